"""Training Signal Annealing (Xie et al., UDA): drop labelled samples the model already fits.

At step t of T the threshold is eta_t = start + alpha_t * (end - start), with
linear alpha_t = t/T, log alpha_t = 1 - exp(-5 t/T), exp alpha_t = exp(5 (t/T - 1)).
With start = 1/K and end = 1 this is the paper's eta_t = alpha_t (1 - 1/K) + 1/K.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TSA_SCHEDULES = ("linear", "log", "exp")


def tsa_alpha(step: int, total_steps: int, schedule: str) -> float:
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    if schedule == "linear":
        return progress
    if schedule == "log":
        return 1.0 - math.exp(-5.0 * progress)
    if schedule == "exp":
        return math.exp(5.0 * (progress - 1.0))
    raise ValueError(f"TSA schedule {schedule!r} is unknown: expected one of "
                     f"{', '.join(TSA_SCHEDULES)}.")


def tsa_threshold(step: int, total_steps: int, schedule: str, start: float, end: float) -> float:
    return start + tsa_alpha(step, total_steps, schedule) * (end - start)


def annealed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, threshold: float
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over the samples whose true-class probability is at most ``threshold``.

    Returns (loss, fraction kept). The loss is the mean over kept samples, and 0 (with a
    gradient of 0, not NaN) when no sample is kept.
    """
    per_sample = F.cross_entropy(logits, targets, reduction="none")
    with torch.no_grad():
        true_class_probability = torch.exp(-per_sample.float())
        keep = (true_class_probability <= threshold).to(per_sample.dtype)
    kept = keep.sum()
    loss = (per_sample * keep).sum() / kept.clamp(min=1.0)
    return loss, kept / len(targets)
