"""Batched uint8 implementations of the operations in `ops`, matching `pil_ops` pixel for pixel.

Images are uint8 tensors of shape (B, C, H, W) with C in {1, 3} on any device.  `apply_ops`
applies a different operation with a different argument to every image without a Python loop
over samples: images are grouped by the *kind* of their operation and every kind runs as one
batched pass:

* geometric ops (shear, translate, rotate): one nearest-neighbour gather with per-image affine
  maps evaluated in PIL's own 16.16 fixed-point arithmetic, so sampling boundaries agree with PIL;
  uncovered pixels take the fill colour (see `ops`);
* point ops (autocontrast, equalize, invert, solarize, posterize, contrast, brightness): one
  gather through per-image, per-channel 256-entry lookup tables built with PIL's formulas;
* Color and Sharpness: PIL's blend with the greyscale / 3x3-smoothed image in float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from augssl.augment.ops import (
    FILL_GREY,
    IDENTITY_ID,
    OP_INDEX,
    OP_SPECS,
    Fill,
    OpKind,
    fill_per_channel,
    op_spec,
)

# (op id, number of images) for the consecutive runs of a sorted batch that share an op.
Groups = list[tuple[int, int]]
_FIXED_ONE = 65536  # PIL's affine_fixed works in 16.16 fixed point
# PIL's RGB -> L conversion: (19595 R + 38470 G + 7471 B + 2^15) >> 16.
_LUMA_WEIGHTS = (19595, 38470, 7471)
_SMOOTH_CENTRE_WEIGHT = 5  # PIL's ImageFilter.SMOOTH: ones with 5 in the centre, sum 13
_SMOOTH_TOTAL = 13


def check_batch(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor batch, got {type(images).__name__}")
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            "expected a uint8 tensor of shape (B, C, H, W) with C = 1 or 3, got dtype "
            f"{images.dtype} and shape {tuple(images.shape)}; convert float images with "
            "(x * 255).round().to(torch.uint8)"
        )


def _per_sample(
    values: torch.Tensor | float, count: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    values = torch.as_tensor(values, dtype=dtype).to(device)
    if values.dim() == 0:
        return values.expand(count)
    if values.shape != (count,):
        raise ValueError(
            f"expected a scalar or {count} per-sample values, got shape {tuple(values.shape)}"
        )
    return values


def _fill_pixel(images: torch.Tensor, fill: Fill) -> torch.Tensor:
    """The fill colour as a (1, C, 1, 1) uint8 tensor on the batch's device."""
    values = fill_per_channel(fill, images.shape[1])
    pixel = images.new_empty((1, len(values), 1, 1))
    # One fill_ per channel writes the values on the device without a blocking host copy.
    for channel, value in enumerate(values):
        pixel[:, channel].fill_(value)
    return pixel


# ---------------------------------------------------------------------------------------------
# Geometric operations
# ---------------------------------------------------------------------------------------------


def _rotation_coefficients(
    degrees: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, ...]:
    # Same float64 steps as PIL's Image.rotate (angle mod 360, cos/sin rounded to 15 decimals).
    radians = -(torch.remainder(degrees, 360.0) * (math.pi / 180.0))
    cos = torch.round(torch.cos(radians), decimals=15)
    sin = torch.round(torch.sin(radians), decimals=15)
    centre_x, centre_y = width / 2, height / 2
    offset_x = (cos * -centre_x + sin * -centre_y + 0.0) + centre_x
    offset_y = (-sin * -centre_x + cos * -centre_y + 0.0) + centre_y
    return cos, sin, offset_x, -sin, cos, offset_y


def _affine_coefficients(
    op_ids: torch.Tensor, arguments: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, ...]:
    """PIL affine coefficients (a, b, c, d, e, f) in float64, one set per image."""
    one, zero = torch.ones_like(arguments), torch.zeros_like(arguments)
    rot = _rotation_coefficients(arguments, height, width)
    is_rotate = op_ids == OP_INDEX["Rotate"]

    def pick(op_name: str, value: torch.Tensor, otherwise: torch.Tensor) -> torch.Tensor:
        return torch.where(op_ids == OP_INDEX[op_name], value, otherwise)

    a = torch.where(is_rotate, rot[0], one)
    b = pick("ShearX", arguments, torch.where(is_rotate, rot[1], zero))
    c = pick("TranslateX", arguments * width, torch.where(is_rotate, rot[2], zero))
    d = pick("ShearY", arguments, torch.where(is_rotate, rot[3], zero))
    e = torch.where(is_rotate, rot[4], one)
    f = pick("TranslateY", arguments * height, torch.where(is_rotate, rot[5], zero))
    return a, b, c, d, e, f


def _fixed(value: torch.Tensor) -> torch.Tensor:
    return torch.floor(value * _FIXED_ONE + 0.5)


def _geometric(
    images: torch.Tensor, op_ids: torch.Tensor, arguments: torch.Tensor, groups: Groups, fill: Fill
) -> torch.Tensor:
    n, channels, height, width = images.shape
    a, b, c, d, e, f = _affine_coefficients(op_ids, arguments, height, width)
    # Source position of output pixel (x, y) is origin + x * (a, d) + y * (b, e), the origin taken
    # at the pixel centre.  PIL uses exact double maths for pure translations and 16.16 fixed
    # point otherwise; both become int32 arithmetic here, which is exact and order independent.
    origin_x = c + a * 0.5 + b * 0.5
    origin_y = f + d * 0.5 + e * 0.5
    translation_only = (b == 0) & (d == 0)
    origin_x = torch.where(translation_only, torch.floor(origin_x) * _FIXED_ONE, _fixed(origin_x))
    origin_y = torch.where(translation_only, torch.floor(origin_y) * _FIXED_ONE, _fixed(origin_y))
    # Sampling happens in a copy with a one-pixel fill-coloured border: shifting every source
    # position by one pixel and clamping to the border sends all outside positions to it.
    fixed = [
        origin_x + _FIXED_ONE, origin_y + _FIXED_ONE, _fixed(a), _fixed(b), _fixed(d), _fixed(e)
    ]
    origin_x, origin_y, step_xx, step_xy, step_yx, step_yy = (
        torch.stack(fixed).to(torch.int32).unsqueeze(2)
    )
    xs = torch.arange(width, device=images.device, dtype=torch.int32)
    ys = torch.arange(height, device=images.device, dtype=torch.int32)
    source_x = (origin_x + step_xy * ys)[:, :, None] + (step_xx * xs)[:, None, :]
    source_y = (origin_y + step_yy * ys)[:, :, None] + (step_yx * xs)[:, None, :]
    source_x = (source_x >> 16).clamp_(0, width + 1)
    source_y = (source_y >> 16).clamp_(0, height + 1)
    flat_index = (source_y * (width + 2) + source_x).view(n, 1, height * width).long()
    bordered = _fill_pixel(images, fill).expand(n, channels, height + 2, width + 2).clone()
    bordered[:, :, 1:-1, 1:-1] = images
    gathered = bordered.view(n, channels, -1).gather(
        2, flat_index.expand(n, channels, height * width)
    )
    return gathered.view(n, channels, height, width)


# ---------------------------------------------------------------------------------------------
# Point operations as lookup tables
# ---------------------------------------------------------------------------------------------


def _levels(device: torch.device, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    return torch.arange(256, device=device, dtype=dtype)


def _luma(images: torch.Tensor) -> torch.Tensor:
    """PIL's 'L' conversion as int32 (B, 1, H, W); a 1-channel image is its own luma."""
    if images.shape[1] == 1:
        return images.to(torch.int32)
    red, green, blue = images.to(torch.int32).unbind(dim=1)
    weighted = red * _LUMA_WEIGHTS[0] + green * _LUMA_WEIGHTS[1] + blue * _LUMA_WEIGHTS[2]
    return ((weighted + (1 << 15)) >> 16).unsqueeze(1)


def _blend(degenerate: torch.Tensor, images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """PIL's Image.blend: trunc(degenerate + factor * (image - degenerate)) in float32, clipped."""
    factors = factors.to(torch.float32).view(-1, *([1] * (images.dim() - 1)))
    base = degenerate.to(torch.float32)
    blended = base + factors * (images.to(torch.float32) - base)
    return blended.clamp_(0.0, 255.0).to(torch.uint8)


def _lut_invert(images: torch.Tensor, arguments: torch.Tensor) -> torch.Tensor:
    return (255 - _levels(images.device)).expand(images.shape[0], 1, 256)


def _lut_solarize(images: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    levels = _levels(images.device)
    below = levels.view(1, 256) < thresholds.view(-1, 1)
    return torch.where(below, levels, 255 - levels).unsqueeze(1)


def _lut_posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    dropped = (8 - bits.round().long()).view(-1, 1)
    return ((_levels(images.device).view(1, 256) >> dropped) << dropped).unsqueeze(1)


def _lut_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    levels = _levels(images.device).view(1, 1, 256)
    return _blend(torch.zeros_like(levels), levels, factors)


def _lut_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    # PIL blends with a constant image at the rounded mean of the greyscale image.
    luma = _luma(images)
    total = luma.sum(dim=(1, 2, 3)).to(torch.float64)
    # Tensor / tensor keeps the division correctly rounded (CUDA turns `/ scalar` into a
    # multiplication by the reciprocal), matching PIL's double mean exactly.
    mean = total / torch.full_like(total, luma[0].numel())
    grey = torch.floor(mean + 0.5).long().view(-1, 1, 1)
    return _blend(grey, _levels(images.device).view(1, 1, 256), factors)


def _lut_autocontrast(images: torch.Tensor, arguments: torch.Tensor) -> torch.Tensor:
    flat = images.flatten(2)
    low = flat.amin(dim=2).to(torch.float64).unsqueeze(2)
    high = flat.amax(dim=2).to(torch.float64).unsqueeze(2)
    levels = _levels(images.device, torch.float64)
    spread = torch.where(high > low, high - low, 1.0)
    scale = torch.full_like(spread, 255.0) / spread  # `255.0 / t` would multiply by a reciprocal
    offset = -low * scale
    stretched = torch.trunc(levels * scale + offset).clamp(0, 255)
    return torch.where(high > low, stretched, levels).to(torch.uint8)


def _lut_equalize(images: torch.Tensor, arguments: torch.Tensor) -> torch.Tensor:
    n, channels = images.shape[:2]
    pixels = images.reshape(n * channels, -1)
    ones = torch.ones(1, 1, dtype=torch.int32, device=images.device).expand_as(pixels)
    histogram = torch.zeros(n * channels, 256, dtype=torch.int32, device=images.device)
    histogram.scatter_add_(1, pixels.long(), ones)
    levels = _levels(images.device, torch.int32)
    last_level = torch.where(histogram > 0, levels, -1).amax(dim=1, keepdim=True)
    last_count = histogram.gather(1, last_level.long())
    # PIL keeps the channel when step is 0, which includes the single-level case.
    step = (pixels.shape[1] - last_count) // 255
    safe_step = step.clamp(min=1)
    before = histogram.cumsum(dim=1, dtype=torch.int32) - histogram
    equalized = ((safe_step // 2 + before) // safe_step).clamp(max=255)
    return torch.where(step == 0, levels, equalized).view(n, channels, 256)


_LUT_BUILDERS: dict[int, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    OP_INDEX["Invert"]: _lut_invert,
    OP_INDEX["Solarize"]: _lut_solarize,
    OP_INDEX["Posterize"]: _lut_posterize,
    OP_INDEX["Brightness"]: _lut_brightness,
    OP_INDEX["Contrast"]: _lut_contrast,
    OP_INDEX["AutoContrast"]: _lut_autocontrast,
    OP_INDEX["Equalize"]: _lut_equalize,
}


def apply_luts(images: torch.Tensor, luts: torch.Tensor) -> torch.Tensor:
    """Map every pixel through its image's and channel's table; `luts` is (B, C or 1, 256)."""
    n, channels, height, width = images.shape
    luts = luts.to(torch.uint8).expand(n, channels, 256).reshape(n * channels, 256)
    pixels = images.reshape(n * channels, height * width).long()
    return luts.gather(1, pixels).view(n, channels, height, width)


def _point_ops(
    images: torch.Tensor, op_ids: torch.Tensor, arguments: torch.Tensor, groups: Groups, fill: Fill
) -> torch.Tensor:
    tables, start = [], 0
    for op, size in groups:
        table = _LUT_BUILDERS[op](images[start : start + size], arguments[start : start + size])
        tables.append(table.to(torch.uint8).expand(size, images.shape[1], 256))
        start += size
    return apply_luts(images, tables[0] if len(tables) == 1 else torch.cat(tables))


# ---------------------------------------------------------------------------------------------
# Colour and sharpness
# ---------------------------------------------------------------------------------------------


def _color(
    images: torch.Tensor, op_ids: torch.Tensor, factors: torch.Tensor, groups: Groups, fill: Fill
) -> torch.Tensor:
    if images.shape[1] == 1:
        return images  # PIL's greyscale version of an 'L' image is the image itself
    return _blend(_luma(images).expand_as(images), images, factors)


def _smooth(images: torch.Tensor) -> torch.Tensor:
    """PIL's ImageFilter.SMOOTH; the one-pixel border keeps its values as in PIL."""
    if images.shape[2] < 3 or images.shape[3] < 3:
        return images
    pixels = images.to(torch.int16)  # the weighted 3x3 sum is at most 13 * 255
    row_sums = pixels[:, :, :, :-2] + pixels[:, :, :, 1:-1] + pixels[:, :, :, 2:]
    box_sums = row_sums[:, :, :-2] + row_sums[:, :, 1:-1] + row_sums[:, :, 2:]
    weighted = box_sums + (_SMOOTH_CENTRE_WEIGHT - 1) * pixels[:, :, 1:-1, 1:-1]
    # sum/13 is never within 1/26 of a .5 tie, so rounding it equals PIL's float accumulation
    # with +0.5 and truncation.
    interior = torch.round(weighted.to(torch.float32) * (1.0 / _SMOOTH_TOTAL)).to(torch.uint8)
    smoothed = images.clone()
    smoothed[:, :, 1:-1, 1:-1] = interior
    return smoothed


def _sharpness(
    images: torch.Tensor, op_ids: torch.Tensor, factors: torch.Tensor, groups: Groups, fill: Fill
) -> torch.Tensor:
    return _blend(_smooth(images), images, factors)


def _identity(
    images: torch.Tensor, op_ids: torch.Tensor, arguments: torch.Tensor, groups: Groups, fill: Fill
) -> torch.Tensor:
    return images


# Every runner takes (images, op ids, arguments, groups, fill); only geometric ops use the fill.
KindRunner = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Groups, Fill], torch.Tensor]
_KIND_RUNNERS: dict[OpKind, KindRunner] = {
    OpKind.IDENTITY: _identity,
    OpKind.GEOMETRIC: _geometric,
    OpKind.LUT: _point_ops,
    OpKind.COLOR: _color,
    OpKind.SHARPNESS: _sharpness,
}
_KINDS = list(OpKind)
# Execution order: ops grouped by kind (identity first), so that after one sort every kind and
# every op inside a kind occupies a contiguous run of the batch.
_EXECUTION_ORDER = sorted(
    range(len(OP_SPECS)), key=lambda op: (_KINDS.index(OP_SPECS[op].kind), op)
)
_RANK_OF_OP = torch.tensor([_EXECUTION_ORDER.index(op) for op in range(len(OP_SPECS))])


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def _rows(images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    # index_select on a 2-D view is an order of magnitude faster on CPU than images[index] or
    # index_copy_ for uint8 batches.
    return images.reshape(images.shape[0], -1).index_select(0, index).view(-1, *images.shape[1:])


def _op_counts(op_ids: torch.Tensor) -> list[int]:
    lowest, highest = (int(value) for value in torch.aminmax(op_ids))
    if lowest < 0 or highest >= len(OP_SPECS):
        raise ValueError(
            f"operation ids must lie in 0..{len(OP_SPECS) - 1} (see augssl.augment.ops.OP_NAMES), "
            f"got values in {lowest}..{highest}"
        )
    return torch.bincount(op_ids, minlength=len(OP_SPECS)).tolist()


def apply_ops(
    images: torch.Tensor, op_ids: torch.Tensor, arguments: torch.Tensor, fill: Fill = FILL_GREY
) -> torch.Tensor:
    """Apply operation `op_ids[i]` with argument `arguments[i]` to image `i`.

    `op_ids` indexes `ops.OP_SPECS` (use `ops.IDENTITY_ID` to leave an image alone); arguments are
    in each op's natural unit (see `ops`); both may also be scalars shared by all images.
    `fill` colours the pixels geometric ops uncover (see `ops`).
    Returns a new uint8 tensor on the same device; the input is not modified.
    """
    check_batch(images)
    fill = fill_per_channel(fill, images.shape[1])
    count, device = images.shape[0], images.device
    op_ids = _per_sample(op_ids, count, device, torch.int64)
    arguments = _per_sample(arguments, count, device, torch.float64)
    if count == 0:
        return images.clone()
    counts = _op_counts(op_ids)
    groups = [(op, counts[op]) for op in _EXECUTION_ORDER if counts[op]]
    if len(groups) == 1:
        result = _KIND_RUNNERS[OP_SPECS[groups[0][0]].kind](images, op_ids, arguments, groups, fill)
        return result.clone() if result is images else result
    order = torch.argsort(_RANK_OF_OP.to(device)[op_ids], stable=True)
    sorted_images = _rows(images, order)
    sorted_ids, sorted_arguments = op_ids[order], arguments[order]
    pieces, start = [], 0
    for kind in _KINDS:
        kind_groups = [(op, size) for op, size in groups if OP_SPECS[op].kind is kind]
        if not kind_groups:
            continue
        stop = start + sum(size for _, size in kind_groups)
        run = slice(start, stop)
        runner = _KIND_RUNNERS[kind]
        pieces.append(
            runner(sorted_images[run], sorted_ids[run], sorted_arguments[run], kind_groups, fill)
        )
        start = stop
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(count, device=device)
    return _rows(torch.cat(pieces), inverse)


def apply_op(
    images: torch.Tensor,
    op: str | int,
    arguments: torch.Tensor | float,
    index: torch.Tensor | None = None,
    fill: Fill = FILL_GREY,
) -> torch.Tensor:
    """Apply one operation to the images chosen by `index` (bool mask or positions; all if None).

    `arguments` is a scalar or holds one value per chosen image; `fill` as in `apply_ops`.
    """
    check_batch(images)
    count, device = images.shape[0], images.device
    chosen = (
        torch.arange(count, device=device)
        if index is None
        else torch.as_tensor(index, device=device)
    )
    if chosen.dtype == torch.bool:
        if chosen.shape != (count,):
            raise ValueError(
                f"a boolean index must have shape ({count},), got {tuple(chosen.shape)}"
            )
        chosen = chosen.nonzero().squeeze(1)
    chosen = chosen.long()
    op_ids = torch.full((count,), IDENTITY_ID, dtype=torch.int64, device=device)
    op_ids[chosen] = OP_INDEX[op_spec(op).name]
    all_arguments = torch.zeros(count, dtype=torch.float64, device=device)
    all_arguments[chosen] = _per_sample(arguments, chosen.numel(), device, torch.float64)
    return apply_ops(images, op_ids, all_arguments, fill)


def cutout(
    images: torch.Tensor,
    centre_y: torch.Tensor,
    centre_x: torch.Tensor,
    size: int,
    fill: Fill = FILL_GREY,
) -> torch.Tensor:
    """Squares of side `size` in the fill colour, one per image centred at (centre_y[i],
    centre_x[i]), clipped to the image."""
    check_batch(images)
    fill = _fill_pixel(images, fill)
    if size <= 0:
        return images.clone()
    count, _, height, width = images.shape
    device = images.device
    top = _per_sample(centre_y, count, device, torch.int64) - size // 2
    left = _per_sample(centre_x, count, device, torch.int64) - size // 2
    rows = torch.arange(height, device=device).view(1, height)
    cols = torch.arange(width, device=device).view(1, width)
    in_rows = (rows >= top.view(-1, 1)) & (rows < top.view(-1, 1) + size)
    in_cols = (cols >= left.view(-1, 1)) & (cols < left.view(-1, 1) + size)
    covered = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)
    return torch.where(covered, fill, images)


def _reflect(positions: torch.Tensor, size: int) -> torch.Tensor:
    positions = positions.abs()
    return torch.where(positions > size - 1, 2 * (size - 1) - positions, positions)


def pad_crop_flip(
    images: torch.Tensor,
    offset_y: torch.Tensor,
    offset_x: torch.Tensor,
    flip: torch.Tensor,
    pad: int,
) -> torch.Tensor:
    """Batched `pil_ops.pad_crop_flip_pil`: reflect pad, crop at per-image offsets, optional
    mirror."""
    check_batch(images)
    count, channels, height, width = images.shape
    if pad >= min(height, width):
        raise ValueError(
            f"reflect padding {pad} must be smaller than the image side {min(height, width)}"
        )
    device = images.device
    offset_y = _per_sample(offset_y, count, device, torch.int64).view(-1, 1)
    offset_x = _per_sample(offset_x, count, device, torch.int64).view(-1, 1)
    flip = _per_sample(flip, count, device, torch.bool).view(-1, 1)
    rows = torch.arange(height, device=device).view(1, -1)
    cols = torch.arange(width, device=device).view(1, -1)
    crop_cols = torch.where(flip, width - 1 - cols, cols)
    source_rows = _reflect(rows + offset_y - pad, height)
    source_cols = _reflect(crop_cols + offset_x - pad, width)
    flat_index = (source_rows[:, :, None] * width + source_cols[:, None, :]).view(count, 1, -1)
    gathered = images.reshape(count, channels, -1).gather(2, flat_index.expand(count, channels, -1))
    return gathered.view(count, channels, height, width)
