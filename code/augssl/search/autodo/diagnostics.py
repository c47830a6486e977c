"""What the learned tables say about the data: weight separation of noisy labels, and the
learned augmentation in readable units."""

from __future__ import annotations

import numpy as np
import torch

from augssl.search.autodo.augment_model import AffineAugment

__all__ = ["augment_parameters", "noisy_weight_auc", "noisy_weight_auc_within_class"]


def noisy_weight_auc(weights: np.ndarray, is_noisy: np.ndarray) -> float | None:
    """ROC AUC of the learned per-image weights as a score of "this label is clean".

    It is the probability that a random clean image weighs more than a random noisy one (ties
    count half): 1 means every noisy image weighs less than every clean one, 0.5 no separation
    (the value at initialisation, where all weights are 1), below 0.5 noisy images weigh more.
    None when the set has no noisy or no clean image.
    """
    from sklearn.metrics import roc_auc_score

    weights = np.asarray(weights, dtype=np.float64)
    is_noisy = np.asarray(is_noisy, dtype=bool)
    if weights.shape != is_noisy.shape:
        raise ValueError(f"one weight per image is needed: got {weights.shape} weights for "
                         f"{is_noisy.shape} noise flags")
    if is_noisy.all() or not is_noisy.any():
        return None
    return float(roc_auc_score(~is_noisy, weights))


def noisy_weight_auc_within_class(weights: np.ndarray, is_noisy: np.ndarray,
                                  labels: np.ndarray) -> float | None:
    """`noisy_weight_auc` within each training label, averaged over the labels that hold both
    noisy and clean images.

    Under class imbalance the noisy labels gather in the rare classes (a flip lands on any class,
    and a rare class has few clean images to dilute it), and weights that lift a rare class lift
    its noisy images with it: the overall AUC then ranks classes, not noise. Within one label the
    class's share drops out. None when no label holds both kinds."""
    weights, labels = np.asarray(weights, dtype=np.float64), np.asarray(labels)
    is_noisy = np.asarray(is_noisy, dtype=bool)
    per_class = [noisy_weight_auc(weights[labels == label], is_noisy[labels == label])
                 for label in np.unique(labels)]
    per_class = [auc for auc in per_class if auc is not None]
    return float(np.mean(per_class)) if per_class else None


def augment_parameters(augment: AffineAugment) -> tuple[np.ndarray, np.ndarray]:
    """(probability, magnitude), each (rows, 7) in the order of ``AFFINE_OPS``.

    probability = P(the op is applied) = sigmoid(probability logit); magnitude = sigmoid
    (magnitude logit), the op's value scale as a fraction of its range (the value is
    ``range * magnitude * eps``, ``eps ~ N(0, 1)``).
    """
    table = augment.table.detach().float().cpu()
    return (torch.sigmoid(table[..., 0]).numpy(), torch.sigmoid(table[..., 1]).numpy())
