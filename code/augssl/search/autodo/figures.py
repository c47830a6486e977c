"""Figures of what an AutoDO run learned: per-image loss weights of clean and noisy labels, and
the learned augmentation per operation."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from augssl.search.autodo.augment_model import (  # noqa: E402
    AFFINE_OPS,
    INIT_MAGNITUDE_LOGIT,
    INIT_PROBABILITY_LOGIT,
)

__all__ = ["plot_augment_parameters", "plot_weight_histogram"]


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def plot_weight_histogram(weights: np.ndarray, is_noisy: np.ndarray,
                          auc: float | None = None) -> Figure:
    """Histograms of the learned weights of clean and of noisy images, on shared bins."""
    weights = np.asarray(weights, dtype=np.float64)
    is_noisy = np.asarray(is_noisy, dtype=bool)
    low, high = float(weights.min()), float(weights.max())
    if high - low < 1e-6:  # all equal (e.g. before any hyper step): still draw one visible bin
        low, high = low - 0.05, high + 0.05
    bins = np.linspace(low, high, 41)
    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    for mask, label, colour in ((~is_noisy, "clean label", "tab:blue"),
                                (is_noisy, "noisy label", "tab:red")):
        if mask.any():
            axis.hist(weights[mask], bins=bins, alpha=0.6, color=colour,
                      label=f"{label} ({int(mask.sum())})")
    axis.set_xlabel("learned loss weight (1 at initialisation)")
    axis.set_ylabel("training images")
    axis.set_yscale("log")
    title = "learned per-image weights"
    if auc is not None:
        title += f"; ROC AUC clean > noisy = {auc:.3f}"
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    return figure


def plot_augment_parameters(probability: np.ndarray, magnitude: np.ndarray, mode: str
                            ) -> Figure:
    """Apply probability and magnitude of each affine op: bars for SHA's one row, box plots of
    the distribution over images for SEP. Dashed lines mark the initial values."""
    probability, magnitude = np.atleast_2d(probability), np.atleast_2d(magnitude)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    positions = np.arange(len(AFFINE_OPS))
    panels = ((axes[0], probability, "apply probability", _sigmoid(INIT_PROBABILITY_LOGIT)),
              (axes[1], magnitude, "magnitude (fraction of the op's range)",
               _sigmoid(INIT_MAGNITUDE_LOGIT)))
    for axis, values, label, initial in panels:
        if mode == "SEP":
            axis.boxplot([values[:, k] for k in positions], positions=positions,
                         showfliers=False, whis=(5, 95))
        else:
            axis.bar(positions, values[0], color="tab:green")
        axis.axhline(initial, color="grey", linestyle="--", linewidth=1)
        axis.set_xticks(positions, AFFINE_OPS, rotation=30, ha="right")
        axis.set_ylim(0, 1)
        axis.set_ylabel(label)
    where = f"over {len(probability)} images (5-95%)" if mode == "SEP" else "shared by all images"
    figure.suptitle(f"learned augmentation ({mode}), {where}")
    figure.tight_layout()
    return figure
