"""The MLflow model a training run logs: a classifier of raw images, normalisation included.

Input: one uint8 array of images, shape (N, H, W, C): rows, columns, channels, as
``numpy.asarray(PIL.Image.open(path))`` gives an RGB image (C = 1 for grayscale: add the last
axis). Output: a DataFrame with one column per class label, in the model's class order, holding
the class probabilities.

The model is loaded by MLflow, from the copy of ``augssl`` logged with it; this module and
``augssl.models`` import only torch, torchvision, numpy, pandas and mlflow, the requirements the
model is logged with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

WEIGHTS = "weights"  # the model artifact holding the weights and what describes them


class ImageClassifier(PythonModel):
    def load_context(self, context) -> None:
        from augssl.models import build_model

        state = torch.load(context.artifacts[WEIGHTS], map_location="cpu", weights_only=True)
        self.classes = list(state["classes"])
        self.network = build_model(state["network"], num_classes=len(self.classes),
                                   in_channels=state["in_channels"]).eval()
        self.network.load_state_dict(state["model"])
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(state["mean"]).view(shape) * 255
        self.std = torch.tensor(state["std"]).view(shape) * 255
        self.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))

    def to(self, device: torch.device) -> ImageClassifier:
        """Run on ``device`` from now on (`predict --device`)."""
        self.device = device
        self.network, self.mean, self.std = (t.to(device) for t in (self.network, self.mean,
                                                                     self.std))
        return self

    @torch.no_grad()
    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        images = torch.from_numpy(np.ascontiguousarray(model_input, dtype=np.uint8))
        images = images.to(self.device).permute(0, 3, 1, 2).float()
        logits = self.network((images - self.mean) / self.std)
        probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
        return pd.DataFrame(probabilities, columns=self.classes)
