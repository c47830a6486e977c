"""FixMatch's unlabelled loss (Sohn et al., 2020): confident predictions on a weakly augmented
view become hard pseudo-labels for a strongly augmented view of the same images.

As in the reference (kekmodel/FixMatch-pytorch, train.py): the weak prediction is
softmax(logits / T) without gradient, its argmax is the pseudo-label, an image counts when that
prediction's top probability is at least ``threshold``, and the loss is the cross-entropy of the
strong view against the pseudo-label, masked, averaged over the whole unlabelled batch (an image
below the threshold contributes 0, so the weight of the loss grows with the mask rate).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F


class PseudoLabelLoss(NamedTuple):
    loss: torch.Tensor  # scalar, differentiable through the strong logits only
    mask: torch.Tensor  # 1.0 where the weak prediction reaches the threshold, else 0.0
    pseudo_labels: torch.Tensor  # argmax of the weak prediction, for every image


def pseudo_label_loss(weak_logits: torch.Tensor, strong_logits: torch.Tensor, threshold: float,
                      temperature: float = 1.0) -> PseudoLabelLoss:
    with torch.no_grad():
        # the temperature changes the confidence the threshold reads, not the argmax: as in the
        # reference, and unlike UDA's mask (augssl.semisup.consistency), which reads the plain
        # softmax
        probabilities = torch.softmax(weak_logits.detach().float() / temperature, dim=1)
        confidence, pseudo_labels = probabilities.max(dim=1)
        mask = (confidence >= threshold).float()
    per_sample = F.cross_entropy(strong_logits.float(), pseudo_labels, reduction="none")
    return PseudoLabelLoss((per_sample * mask).mean(), mask, pseudo_labels)


def pseudo_label_accuracy(pseudo_labels: torch.Tensor, true_labels: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
    """The fraction of the pseudo-labels the loss uses (those under ``mask``) that are right;
    NaN when the mask keeps none, where there is no accuracy to tell (0 would read as all
    wrong)."""
    kept = mask.sum()
    correct = ((pseudo_labels == true_labels).float() * mask).sum()
    return torch.where(kept > 0, correct / kept.clamp(min=1.0), torch.full_like(kept, math.nan))
