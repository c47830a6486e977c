"""Figures logged as run artifacts: confusion matrix, a grid of augmented training images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import save_image  # noqa: E402


def save_confusion_matrix(matrix: torch.Tensor, class_names: list[str], path: Path,
                          title: str) -> None:
    counts = matrix.double()
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.45 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90, fontsize=7)
    axis.set_yticks(ticks, class_names, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def save_augmented_grid(images_uint8: torch.Tensor, path: Path, columns: int = 8) -> None:
    save_image(images_uint8[:columns * 4].float().cpu() / 255.0, path, nrow=columns, padding=1)
