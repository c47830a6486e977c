"""Consistency between a clean view and a strongly augmented view of the same images (UDA).

The clean view's prediction is the target: it is computed without gradient, optionally sharpened
by a softmax temperature, and optionally only confident samples count (the paper's later
version). As in the official code (google-research/uda, image/main.py), the confidence mask reads
the unsharpened prediction; the temperature shapes the target only. Losses are averaged over the
whole batch (masked samples contribute 0), as a "batchmean" KL does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CONSISTENCY_CRITERIA = ("KL", "MSE")


def consistency_loss(clean_logits: torch.Tensor, strong_logits: torch.Tensor, criterion: str = "KL",
                     temperature: float = 1.0, confidence_threshold: float = 0.0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, fraction of samples kept by the confidence mask)."""
    with torch.no_grad():
        clean = clean_logits.detach().float()
        target = torch.softmax(clean / temperature, dim=1)
        # "at least the threshold"; the official code keeps "> threshold": only exact ties differ
        mask = (torch.softmax(clean, dim=1).max(dim=1).values >= confidence_threshold).float()
    strong = strong_logits.float()
    if criterion == "KL":
        log_strong = F.log_softmax(strong, dim=1)
        per_sample = (target * (torch.log(target.clamp(min=1e-12)) - log_strong)).sum(dim=1)
    elif criterion == "MSE":
        per_sample = ((torch.softmax(strong, dim=1) - target) ** 2).mean(dim=1)
    else:
        raise ValueError(f"consistency criterion {criterion!r} is unknown: expected one of "
                         f"{', '.join(CONSISTENCY_CRITERIA)}.")
    return (per_sample * mask).mean(), mask.mean()


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean prediction entropy (entropy minimisation pushes it down)."""
    log_p = F.log_softmax(logits.float(), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()
