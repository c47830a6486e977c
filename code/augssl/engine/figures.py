"""Figures of a run: the confusion matrix, a grid of augmented training images."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402


def plot_confusion_matrix(matrix: torch.Tensor, class_names: list[str], title: str) -> Figure:
    counts = matrix.double()
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.45 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size), dpi=120)
    axis.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90, fontsize=7)
    axis.set_yticks(ticks, class_names, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.tight_layout()
    return figure


def augmented_grid(images_uint8: torch.Tensor, columns: int = 8) -> torch.Tensor:
    """Up to 4 rows of ``columns`` images as one (3, H, W) image in [0, 1]."""
    return make_grid(images_uint8[:columns * 4].float().cpu() / 255.0, nrow=columns, padding=1)
