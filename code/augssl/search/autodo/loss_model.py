"""AutoDO's learned loss: per-image weights and per-image soft labels.

For training image ``i`` with model probabilities ``p_i = softmax(logits_i)``:

- the weight is ``w_i = softplus(a_i) / softplus(0)`` with ``a_i`` learned, init 0, so every
  weight starts at exactly 1 and stays positive;
- the soft label is ``q_i = softmax(s_i)`` with learned logits ``s_i``, initialised to
  ``log((1 - 0.05) * onehot(y_i) + 0.05 / K)``: the given (possibly noisy) label, smoothed.

Modes (the batch loss is always the plain mean over the batch), as in the original
(``custom_models/automodels.py``, ``LossModel``):

=====  ===========================================================================
NONE   ``CE(p_i, y_i)``                         (no learned parameters)
WGHT   ``w_i * CE(p_i, y_i)``
SOFT   ``D(q_i, p_i)``                          (the weight stays 1)
BOTH   ``w_i * D(q_i, p_i)``
=====  ===========================================================================

SOFT and BOTH share the soft-label divergence ``D``: ``KL(q_i || p_i)``, or with
``symmetric`` the mean of the two directions ``0.5 * (KL(q_i || p_i) + KL(p_i || q_i))`` =
``0.5 * sum_k (q_ik - p_ik) (log q_ik - log p_ik)``. The original turns the symmetric form on
for biased training data (imbalance or label noise): besides pulling the model towards the soft
label, the reverse term ``KL(p || q)`` penalises probability the model puts where the soft
label puts little. Weights are not renormalised over the batch, so a weight scales its image's
share of the training step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from augssl.search.autodo.rows import RowSlice, take_rows

__all__ = ["LABEL_SMOOTHING", "LOSS_MODES", "LossModel", "loss_memory_bytes"]

LOSS_MODES = ("NONE", "WGHT", "SOFT", "BOTH")
LABEL_SMOOTHING = 0.05
_SOFTPLUS_AT_ZERO = math.log(2.0)


def _check_targets(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    targets = torch.as_tensor(targets)
    if targets.ndim != 1 or targets.dtype.is_floating_point or targets.is_complex():
        raise ValueError(f"targets must be a 1-D integer tensor (one label per training image), "
                         f"got {targets.dtype} of shape {tuple(targets.shape)}")
    if targets.numel() and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"targets must lie in 0..{num_classes - 1}, got "
                         f"{targets.min().item()}..{targets.max().item()}; drop unlabelled "
                         "(-1) images or fix num_classes")
    # The tables are built on the CPU; the module moves with .to(device) afterwards.
    return targets.long().cpu()


class LossModel(nn.Module):
    """Per-image loss weights and soft labels for the training set's ``targets`` (N,).

    ``weight_logits`` (N,) exists in WGHT and BOTH, ``soft_logits`` (N, K) in SOFT and BOTH;
    rows are training-set positions. ``symmetric`` selects the symmetric soft-label divergence
    (see the module doc). ``dtype`` float16 halves the tables (the soft labels of a large data
    set with many classes are by far AutoDO's largest state).
    """

    def __init__(self, mode: str, targets: torch.Tensor, num_classes: int, *,
                 symmetric: bool = False, smoothing: float = LABEL_SMOOTHING,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if mode not in LOSS_MODES:
            raise ValueError(f"loss mode must be one of {LOSS_MODES}, got {mode!r}")
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must lie in [0, 1), got {smoothing!r}")
        targets = _check_targets(targets, num_classes)
        self.mode = mode
        self.symmetric = symmetric
        self.num_classes = num_classes
        self.num_images = len(targets)
        self.weight_logits = (nn.Parameter(torch.zeros(len(targets), dtype=dtype))
                              if mode in ("WGHT", "BOTH") else None)
        if mode in ("SOFT", "BOTH"):
            smoothed = torch.full((len(targets), num_classes), smoothing / num_classes)
            smoothed[torch.arange(len(targets)), targets] += 1 - smoothing
            self.soft_logits = nn.Parameter(smoothed.log().to(dtype))
        else:
            self.soft_logits = None

    def _tables(self) -> list[nn.Parameter]:
        return [t for t in (self.weight_logits, self.soft_logits) if t is not None]

    def _rows(self, index: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(index, dtype=torch.long)
        if index.numel() and (index.min() < 0 or index.max() >= self.num_images):
            raise IndexError(f"training-set positions must lie in 0..{self.num_images - 1}, got "
                             f"{index.min().item()}..{index.max().item()}; pass positions in "
                             "the biased training set, not indices into the full data set")
        return index

    def take(self, index: torch.Tensor) -> list[RowSlice]:
        """The rows a batch uses (weights first, then soft labels), as hyper-gradient leaves."""
        rows = self._rows(index)
        return [take_rows(table, rows) for table in self._tables()]

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                slices: list[RowSlice] | None = None) -> torch.Tensor:
        """Mean loss of a batch.

        With ``slices`` from :meth:`take` the loss is differentiable in those leaves (hyper
        steps); without, the tables are read as constants (ordinary training steps).
        """
        if slices is None:
            rows = self._rows(index).to(logits.device)
            values = [table.detach()[rows].float() for table in self._tables()]
        else:
            values = [s.values for s in slices]
        weight_logits = values.pop(0) if self.weight_logits is not None else None
        soft_logits = values.pop(0) if self.soft_logits is not None else None
        if soft_logits is None:
            per_image = F.cross_entropy(logits, targets, reduction="none")
        else:
            per_image = self._divergence(soft_logits, logits)
        if weight_logits is not None:
            per_image = per_image * F.softplus(weight_logits) / _SOFTPLUS_AT_ZERO
        return per_image.mean()

    def _divergence(self, soft_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Per image: KL(q || p), or its symmetric form 0.5 (KL(q || p) + KL(p || q))."""
        log_p = F.log_softmax(logits, dim=-1)
        log_q = F.log_softmax(soft_logits, dim=-1)
        if self.symmetric:
            return 0.5 * ((log_q.exp() - log_p.exp()) * (log_q - log_p)).sum(-1)
        return (log_q.exp() * (log_q - log_p)).sum(-1)

    def weights(self) -> torch.Tensor:
        """Current weights of all training images (ones when the mode learns none)."""
        if self.weight_logits is None:
            return torch.ones(self.num_images)
        return F.softplus(self.weight_logits.detach().float()) / _SOFTPLUS_AT_ZERO

    def soft_labels(self) -> torch.Tensor | None:
        """Current soft label distributions (N, K), or None when the mode learns none."""
        if self.soft_logits is None:
            return None
        return F.softmax(self.soft_logits.detach().float(), dim=-1)

    def extra_repr(self) -> str:
        return (f"mode={self.mode}, symmetric={self.symmetric}, images={self.num_images}, "
                f"classes={self.num_classes}")


def loss_memory_bytes(num_images: int, num_classes: int, mode: str = "BOTH",
                      dtype: torch.dtype = torch.float32, with_optimizer_state: bool = True) -> int:
    """Bytes the loss model's tables need for ``mode`` (and their float32 RMSprop state).

    ImageNet (1,281,167 images, 1000 classes) in BOTH mode, float32: 5,129,792,668 bytes
    (5.1 GB) of tables, 10,259,585,336 bytes (10.3 GB) with the optimiser state; the soft
    labels are nearly all of it.
    """
    if mode not in LOSS_MODES:
        raise ValueError(f"loss mode must be one of {LOSS_MODES}, got {mode!r}")
    per_image = (1 if mode in ("WGHT", "BOTH") else 0) + (num_classes if mode in ("SOFT", "BOTH")
                                                          else 0)
    entries = num_images * per_image
    table = entries * torch.empty(0, dtype=dtype).element_size()
    return table + (entries * 4 if with_optimizer_state else 0)
