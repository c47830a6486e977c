"""Figures of an AWS search: the learned distribution over the 36 x 36 pairs, and how the
policy's entropy fell over the search loops.

Kept out of the package's `__init__` so that importing the search library does not load
matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from augssl.search.aws.policy import NUM_PAIRS, PairPolicy  # noqa: E402
from augssl.search.aws.space import NUM_OPERATIONS, OPERATION_NAMES  # noqa: E402

UNIFORM_ENTROPY = math.log(NUM_PAIRS)


def plot_policy_heatmap(policy: PairPolicy) -> Figure:
    """P(op1, op2) as a 36 x 36 image, rows op1 and columns op2, every operation named."""
    joint = policy.joint().detach().double().cpu().numpy()
    figure, axis = plt.subplots(figsize=(11, 10))
    image = axis.imshow(joint, cmap="viridis", vmin=0.0, vmax=float(joint.max()))
    ticks = range(NUM_OPERATIONS)
    axis.set_xticks(ticks, OPERATION_NAMES, rotation=90, fontsize=7)
    axis.set_yticks(ticks, OPERATION_NAMES, fontsize=7)
    axis.set_xlabel("second operation (op2)")
    axis.set_ylabel("first operation (op1)")
    with torch.no_grad():
        entropy = float(policy.entropy())
    axis.set_title(f"P(op1, op2): entropy {entropy:.3f} nats (uniform: {UNIFORM_ENTROPY:.3f})")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.02).set_label("probability")
    figure.tight_layout()
    return figure


def plot_entropy_curve(entropies: Sequence[float]) -> Figure:
    """Entropy of the policy after each search loop; entry 0 is the policy before any update."""
    values = [float(value) for value in entropies]
    if not values or not all(math.isfinite(value) for value in values):
        raise ValueError(
            "the entropy curve needs at least one finite entropy (entry 0: the initial policy), "
            f"got {values}"
        )
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(range(len(values)), values, marker="o" if len(values) <= 50 else None, label="policy")
    axis.axhline(UNIFORM_ENTROPY, color="grey", linestyle="--", label=f"uniform (ln {NUM_PAIRS})")
    axis.set_xlabel("search loop (0: before the first policy update)")
    axis.set_ylabel("entropy of P(op1, op2) (nats)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def save_policy_heatmap(policy: PairPolicy, path: str | Path) -> Path:
    return _save(plot_policy_heatmap(policy), Path(path))


def save_entropy_curve(entropies: Sequence[float], path: str | Path) -> Path:
    return _save(plot_entropy_curve(entropies), Path(path))


def _save(figure: Figure, path: Path) -> Path:
    try:
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path
