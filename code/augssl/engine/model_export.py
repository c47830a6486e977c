"""The final model as run artifacts: a plain state dict and a loadable MLflow model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def export_final_model(model: torch.nn.Module, tracker, bundle, config) -> None:
    import mlflow

    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    torch.save({"model": module.state_dict(), "network": config.network,
                "num_classes": len(bundle.classes), "in_channels": bundle.channels,
                "image_size": bundle.image_size, "classes": list(bundle.classes),
                "mean": list(bundle.mean), "std": list(bundle.std)},
               tracker.path("final_model.pt"))
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    import augssl

    # code_paths ships the package with the model, so it loads where augssl is not installed
    example = np.zeros((2, bundle.channels, bundle.image_size, bundle.image_size), np.float32)
    mlflow.pytorch.log_model(module.cpu().eval(), name="model", pip_requirements=requirements,
                             input_example=example,
                             code_paths=[str(Path(augssl.__file__).parent)])
