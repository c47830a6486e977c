"""Hyper-gradients by implicit differentiation with a Neumann-series inverse Hessian (AutoDO HES).

Let ``theta`` be parameters of the classifier's last layer, ``lambda`` the augmentation and
loss-model parameters, ``L_T(theta, lambda)`` the training loss and ``L_V(theta)`` the
validation loss. At a minimum ``theta*(lambda)`` of ``L_T`` the implicit function theorem gives

    dL_V/dlambda = - d2L_T/(dlambda dtheta) . H^-1 . grad_theta L_V,    H = d2L_T/dtheta2.

``H^-1 = alpha * sum_j (I - alpha H)^j`` when ``0 < alpha < 2 / lambda_max(H)`` and H is
positive definite. :func:`implicit_hypergradient` truncates the sum after ``terms`` terms:

    v = grad_theta L_V;  p = v
    repeat terms times:  v <- v - alpha * (H v);  p <- p + v      (H v by double backward)
    return  - d/dlambda (grad_theta L_T . p)                     (p held constant)

The result is the estimate of ``dL_V/dlambda`` divided by ``alpha`` (the convention of Lorraine
et al., 2020, that AutoDO follows): it points the way ``L_V`` grows, so a descent step on it
lowers the validation loss, and RMSprop, which the hyper-optimiser uses, ignores its scale.
Multiply by ``alpha`` for the estimate itself. ``L_V`` must not depend on ``lambda`` directly
(it does not here: validation images are neither augmented nor reweighted).

With the defaults (``terms=5``, ``alpha=0.01``) and ``alpha * lambda_max(H) << 1``, ``p`` is
close to ``6 v``: the hyper-gradient is then mostly the alignment of training and validation
gradients, which points like the exact one when ``H`` is close to a multiple of the identity
and can differ a lot on an ill-conditioned ``H``. More terms (and the largest stable alpha)
bring it to the exact direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from augssl.search.autodo.augment_model import AffineAugment
from augssl.search.autodo.loss_model import LossModel
from augssl.search.autodo.rows import RowSlice

__all__ = ["DEFAULT_NEUMANN_ALPHA", "DEFAULT_NEUMANN_TERMS", "HyperGradient",
           "implicit_hypergradient", "network_hypergradient"]

DEFAULT_NEUMANN_TERMS = 5
DEFAULT_NEUMANN_ALPHA = 0.01


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def implicit_hypergradient(train_loss: torch.Tensor, val_loss: torch.Tensor,
                           theta: Sequence[torch.Tensor], hyper: Sequence[torch.Tensor], *,
                           terms: int = DEFAULT_NEUMANN_TERMS,
                           alpha: float = DEFAULT_NEUMANN_ALPHA) -> list[torch.Tensor]:
    """Neumann-series implicit hyper-gradient of ``val_loss`` for each tensor in ``hyper``.

    ``train_loss`` must be a scalar whose graph reaches ``theta`` and every tensor in
    ``hyper``; ``val_loss`` a scalar whose graph reaches ``theta``. See the module doc for
    what is computed and its scale.
    """
    if terms < 0:
        raise ValueError(f"terms must be >= 0 (Neumann series terms after the first), got {terms}")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 and below 2 / (largest Hessian eigenvalue), got "
                         f"{alpha}")
    theta, hyper = list(theta), list(hyper)
    train_grad = torch.autograd.grad(train_loss, theta, create_graph=True)
    v = [g.detach() for g in torch.autograd.grad(val_loss, theta)]
    p = [x.clone() for x in v]
    for _ in range(terms):
        hessian_v = torch.autograd.grad(train_grad, theta, grad_outputs=v, retain_graph=True)
        v = [x - alpha * hx for x, hx in zip(v, hessian_v)]
        p = [px + x for px, x in zip(p, v)]
    mixed = torch.autograd.grad(_dot(train_grad, p), hyper, allow_unused=True)
    unused = [i for i, m in enumerate(mixed) if m is None]
    if unused:
        raise ValueError(f"hyper-parameter tensors at positions {unused} do not affect the "
                         "training loss through theta: build train_loss from the slices passed "
                         "as hyper (e.g. augment(..., slices=s) and loss_model(..., slices=s))")
    return [-m for m in mixed]


@dataclass(frozen=True, eq=False)
class HyperGradient:
    """The hyper-gradient of one batch: ``grads[j]`` belongs to ``slices[j].values``."""

    slices: list[RowSlice]
    grads: list[torch.Tensor]
    train_loss: float
    val_loss: float


def network_hypergradient(model: nn.Module, augment: AffineAugment | None,
                          loss_model: LossModel | None, images: torch.Tensor,
                          targets: torch.Tensor, index: torch.Tensor, val_images: torch.Tensor,
                          val_targets: torch.Tensor, generator: torch.Generator, *,
                          terms: int = DEFAULT_NEUMANN_TERMS,
                          alpha: float = DEFAULT_NEUMANN_ALPHA) -> HyperGradient:
    """Hyper-gradient of one training batch for a network with ``forward_features`` and
    ``classifier`` (every :mod:`augssl.models` model).

    The training images (float, normalised) at training-set positions ``index`` are augmented
    by ``augment`` (None: used as given), passed through the feature extractor and scored by
    ``loss_model`` (None: plain cross-entropy); the validation batch is scored by plain
    cross-entropy without augmentation. Only the classifier's weight matrix is differentiated
    as ``theta``, not its bias (the original's ``hyperHesTrain`` keeps the ``'.weight'`` of
    its ``cls`` layer); the network's other weights are held fixed. BatchNorm layers follow
    the model's mode: in train mode both forward passes also update the running statistics.
    """
    augment_slices = augment.take(index) if augment is not None else []
    loss_slices = loss_model.take(index) if loss_model is not None else []
    slices = augment_slices + loss_slices
    if not slices:
        raise ValueError("nothing to learn: pass an AffineAugment, or a LossModel in a mode "
                         "other than NONE")
    if augment is not None:
        images = augment(images, index, generator, slices=augment_slices)
    logits = model.classifier(model.forward_features(images))
    if loss_model is not None:
        train_loss = loss_model(logits, targets, index, slices=loss_slices)
    else:
        train_loss = F.cross_entropy(logits, targets)
    with torch.no_grad():
        val_features = model.forward_features(val_images)
    val_loss = F.cross_entropy(model.classifier(val_features), val_targets)
    grads = implicit_hypergradient(train_loss, val_loss, [model.classifier.weight],
                                   [s.values for s in slices], terms=terms, alpha=alpha)
    return HyperGradient(slices=slices, grads=grads, train_loss=train_loss.item(),
                         val_loss=val_loss.item())
