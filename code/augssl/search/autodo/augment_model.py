"""AutoDO's differentiable affine augmentation: 7 learned operations, one warp per image.

Operations and their ranges (``AFFINE_OPS``, ``OP_RANGES``), the original's; a range scales the
operation's normal noise (below), so it is the value's standard deviation at full magnitude,
not a bound::

    rotate        +-30 degrees about the image centre
    translate_x   +-0.45 of the image width
    translate_y   +-0.45 of the image height
    shear_x       +-0.3  (x' = x + k * y, about the centre)
    shear_y       +-0.3  (y' = y + k * x, about the centre)
    scale_x       1 +- 0.5 (about the centre)
    scale_y       1 +- 0.5

Each operation has two learned numbers, stored as ``table[row, op] = (p, m)``, initialised as
the original does (``custom_models/automodels.py``, ``AugmentModel``):

- ``p``, the probability logit, init ``logit(1 / (K - 2)) = ln(0.2 / 0.8)`` for the K = 7 ops:
  the apply-bit is a hard two-class Gumbel-softmax with logits ``(p, 0)`` at temperature
  ``tau``, so ``P(apply) = sigmoid(p)`` (0.2 at init). Two-class Gumbel-softmax is the binary
  concrete relaxation: ``soft = sigmoid((p + L) / tau)`` with ``L`` standard logistic noise,
  ``hard = [soft > 1/2]``; the forward pass uses ``hard`` (exactly 0 or 1), the backward pass
  the gradient of ``soft`` (straight-through).
- ``m``, the magnitude logit, init 0 (the original's magnitude 5 of 10): the operation's value
  is ``range * sigmoid(m) * eps`` with ``eps ~ N(0, 1)`` (reparameterised, so it is
  differentiable in ``m``), unclipped as in the original: its sign is that of ``eps`` and at
  init its standard deviation is half the range (15 degrees of rotation); a draw can leave the
  range above.

An operation that is not applied has value 0, which is the identity for all seven (scale is
``1 + value``), so the image's warp uses ``bit * value``: gradients reach ``p`` through the bit
and ``m`` through the value of the applied operations. The seven are composed into one affine
map, content first scaled, then sheared, rotated and translated, all about the image centre;
its inverse (the map from output to input pixels, written in closed form) goes to
``F.affine_grid`` / ``F.grid_sample`` (bilinear, ``align_corners=False``). Pixels that come
from outside the image are filled per ``padding_mode``: ``"border"`` (the default, the
original's ``border_mode='border'``: the edge pixel repeats), ``"zeros"`` (on images normalised
by the data set mean and std that is the mean colour) or ``"reflection"``.

Modes: ``SHA`` keeps one row shared by all images (each image still draws its own bits and
noise); ``SEP`` keeps one row per training image, indexed by its position in the training set.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from augssl.search.autodo.rows import RowSlice, take_rows

__all__ = ["AFFINE_OPS", "AUGMENT_MODES", "INIT_MAGNITUDE_LOGIT", "INIT_PROBABILITY_LOGIT",
           "OP_RANGES", "AffineAugment", "affine_warp", "sep_memory_bytes"]

AFFINE_OPS = ("rotate", "translate_x", "translate_y", "shear_x", "shear_y", "scale_x", "scale_y")
OP_RANGES = (math.radians(30.0), 0.45, 0.45, 0.3, 0.3, 0.5, 0.5)
AUGMENT_MODES = ("SHA", "SEP")
# the original's probNorm = 1 / (K - 2), as a logit
_INIT_PROBABILITY = 1 / (len(AFFINE_OPS) - 2)
INIT_PROBABILITY_LOGIT = math.log(_INIT_PROBABILITY / (1 - _INIT_PROBABILITY))
INIT_MAGNITUDE_LOGIT = 0.0
PADDING_MODES = ("zeros", "border", "reflection")


def _homogeneous(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
                 tx: torch.Tensor | None = None, ty: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, 3) matrices [[a, b, tx], [c, d, ty], [0, 0, 1]]."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    tx = zero if tx is None else tx
    ty = zero if ty is None else ty
    rows = (torch.stack([a, b, tx], -1), torch.stack([c, d, ty], -1),
            torch.stack([zero, zero, one], -1))
    return torch.stack(rows, -2)


def _sampling_matrices(values: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 2, 3) ``affine_grid`` matrices for per-image op values (B, 7), in the op order.

    The content map is ``A = T R Sh S`` in pixel units about the centre; the grid needs its
    inverse ``S^-1 Sh^-1 R^-1 T^-1``, each factor inverted in closed form, then expressed in
    the normalised coordinates of ``affine_grid`` (one unit = half the width or height).
    """
    angle, tx, ty, shx, shy, sx, sy = values.unbind(-1)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    cos, sin = torch.cos(angle), torch.sin(angle)
    inverse_translate = _homogeneous(one, zero, zero, one, -tx * width, -ty * height)
    inverse_rotate = _homogeneous(cos, sin, -sin, cos)
    # Sh = Sh_x Sh_y, so its inverse is Sh_y^-1 Sh_x^-1.
    inverse_shear = _homogeneous(one, zero, -shy, one) @ _homogeneous(one, -shx, zero, one)
    inverse_scale = _homogeneous(1 / (1 + sx), zero, zero, 1 / (1 + sy))
    pixel_map = inverse_scale @ inverse_shear @ inverse_rotate @ inverse_translate
    to_pixels = torch.diag(values.new_tensor([width / 2, height / 2, 1.0]))
    to_normalised = torch.diag(values.new_tensor([2 / width, 2 / height, 1.0]))
    return (to_normalised @ pixel_map @ to_pixels)[:, :2, :]


def _sample_op_values(params: torch.Tensor, generator: torch.Generator,
                      temperature: float) -> torch.Tensor:
    """(B, 7) op values, 0 where an op is not applied; differentiable in ``params`` (B, 7, 2)."""
    probability_logits, magnitude_logits = params.unbind(-1)
    uniform = torch.rand(probability_logits.shape, generator=generator, device=params.device,
                         dtype=params.dtype)
    tiny = torch.finfo(params.dtype).tiny
    uniform = uniform.clamp(tiny, 1 - torch.finfo(params.dtype).eps)
    logistic = torch.log(uniform) - torch.log1p(-uniform)
    soft_bit = torch.sigmoid((probability_logits + logistic) / temperature)
    bit = (soft_bit > 0.5).to(params.dtype) + soft_bit - soft_bit.detach()
    # the original's sampleM = sigmoid(m) * N(0, 1), neither clipped nor rescaled
    noise = torch.randn(magnitude_logits.shape, generator=generator, device=params.device,
                        dtype=params.dtype)
    value = params.new_tensor(OP_RANGES) * torch.sigmoid(magnitude_logits) * noise
    return bit * value


def affine_warp(images: torch.Tensor, params: torch.Tensor, generator: torch.Generator, *,
                temperature: float = 1.0, padding_mode: str = "border") -> torch.Tensor:
    """Warp float images (B, C, H, W) with one sampled affine map each, from ``params`` (B, 7, 2).

    ``params[i, k] = (probability logit, magnitude logit)`` of op ``AFFINE_OPS[k]`` for image
    ``i``. Randomness comes only from ``generator`` (on the images' device).
    """
    if not torch.is_tensor(images) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (B, C, H, W), normalised; got "
                         f"{getattr(images, 'dtype', type(images).__name__)} of shape "
                         f"{tuple(getattr(images, 'shape', ()))}. Convert uint8 batches "
                         "with the data set's mean/std first")
    expected = (images.shape[0], len(AFFINE_OPS), 2)
    if tuple(params.shape) != expected:
        raise ValueError(f"params must have shape {expected} (images, ops, [probability logit, "
                         f"magnitude logit]), got {tuple(params.shape)}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    values = _sample_op_values(params.to(images.dtype), generator, temperature)
    height, width = images.shape[-2:]
    grid = F.affine_grid(_sampling_matrices(values, height, width), list(images.shape),
                         align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode,
                         align_corners=False)


def _initial_table(rows: int, dtype: torch.dtype) -> torch.Tensor:
    table = torch.empty(rows, len(AFFINE_OPS), 2, dtype=dtype)
    table[..., 0] = INIT_PROBABILITY_LOGIT
    table[..., 1] = INIT_MAGNITUDE_LOGIT
    return table


class AffineAugment(nn.Module):
    """Learned affine augmentation in ``SHA`` or ``SEP`` mode (see the module doc).

    ``table`` is a (rows, 7, 2) parameter: one row for SHA, ``num_images`` for SEP. ``dtype``
    float16 halves the table for very large data sets; arithmetic is done in float32 anyway.
    """

    def __init__(self, mode: str, num_images: int | None = None, *, temperature: float = 1.0,
                 padding_mode: str = "border", dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if mode not in AUGMENT_MODES:
            raise ValueError(f"augmentation mode must be one of {AUGMENT_MODES} (one shared "
                             f"parameter set, or one per image), got {mode!r}")
        if mode == "SEP" and (num_images is None or num_images < 1):
            raise ValueError(f"SEP mode keeps one row per training image: pass num_images >= 1 "
                             f"(the training set's size), got {num_images!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.mode = mode
        self.temperature = temperature
        self.padding_mode = padding_mode
        self.table = nn.Parameter(_initial_table(1 if mode == "SHA" else num_images, dtype))

    def rows_for(self, index: torch.Tensor) -> torch.Tensor:
        """Table rows of the images at training-set positions ``index`` (B,)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.table.device)
        if self.mode == "SHA":
            return torch.zeros_like(index)
        if index.numel() and (index.min() < 0 or index.max() >= len(self.table)):
            raise IndexError(f"training-set positions must lie in 0..{len(self.table) - 1} "
                             f"(SEP table of {len(self.table)} rows), got "
                             f"{index.min().item()}..{index.max().item()}; pass positions in "
                             "the biased training set, not indices into the full data set")
        return index

    def take(self, index: torch.Tensor) -> list[RowSlice]:
        """The rows a batch uses, as leaves to take the hyper-gradient against."""
        return [take_rows(self.table, self.rows_for(index))]

    def forward(self, images: torch.Tensor, index: torch.Tensor, generator: torch.Generator,
                slices: list[RowSlice] | None = None) -> torch.Tensor:
        """Augment a batch.

        With ``slices`` from :meth:`take` the warp is differentiable in those leaves (hyper
        steps); without, the table is read as a constant (ordinary training steps).
        """
        if slices is None:
            params = self.table.detach()[self.rows_for(index)]
        else:
            (only,) = slices
            params = only.values
        return affine_warp(images, params, generator, temperature=self.temperature,
                           padding_mode=self.padding_mode)

    def extra_repr(self) -> str:
        return (f"mode={self.mode}, rows={len(self.table)}, temperature={self.temperature}, "
                f"padding_mode={self.padding_mode!r}")


def sep_memory_bytes(num_images: int, dtype: torch.dtype = torch.float32,
                     with_optimizer_state: bool = True) -> int:
    """Bytes a SEP table for ``num_images`` images needs (and its float32 RMSprop state).

    Hyper-gradients are taken per batch (:mod:`~augssl.search.autodo.rows`), so no full-size
    gradient buffer exists. For ImageNet's 1,281,167 training images in float32 that is
    71,745,352 bytes (71.7 MB) for the table and 143,490,704 bytes (143.5 MB) with the
    optimiser state; a float16 table brings the total to 107.6 MB.
    """
    entries = num_images * len(AFFINE_OPS) * 2
    table = entries * torch.empty(0, dtype=dtype).element_size()
    return table + (entries * 4 if with_optimizer_state else 0)
