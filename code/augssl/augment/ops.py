"""Single table of augmentation operations shared by the PIL and the batched tensor code.

Every operation takes one *argument* in its natural unit (shear coefficient, fraction of the
image size, degrees, enhancement factor, bits, threshold).  Policies pick a *level*, turn it
into a fraction of the operation's range and then into that argument with `argument_from_fraction`
(PIL, Python floats) or `arguments_from_fractions` (tensors).  Both use the same float64
arithmetic so a PIL image and a batch row given the same level receive bit-identical arguments.

Pixels that a geometric op uncovers or Cutout erases take a *fill* colour: one uint8 value for
every channel, or one value per channel.  Training fills with the data set's mean colour
(`fill_from_mean`), as the Cutout paper does: a fixed mid-grey paints a bright patch on data
with a dark background such as Fashion-MNIST.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from numbers import Integral

import torch

Fill = int | tuple[int, ...]
# The fill when the caller names no data set: mid-grey, as in the AutoAugment reference code.
FILL_GREY = 128


class OpKind(Enum):
    """How the batched implementation executes an operation (ops of one kind share a pass)."""

    IDENTITY = "identity"
    GEOMETRIC = "geometric"  # one nearest-neighbour resampling pass with per-image matrices
    LUT = "lut"  # per-image, per-channel 256-entry lookup table
    COLOR = "color"  # blend with the greyscale image
    SHARPNESS = "sharpness"  # blend with the 3x3-smoothed image


class ArgumentForm(Enum):
    """How a strength in [low, high] becomes the operation's argument."""

    NONE = "none"  # the operation takes no argument
    SIGNED = "signed"  # +/- strength (shear, translate, rotate)
    FACTOR = "factor"  # 1 +/- strength (enhancement factors)
    BITS = "bits"  # strength rounded to an integer number of bits
    PLAIN = "plain"  # the strength itself (solarize threshold)


@dataclass(frozen=True)
class OpSpec:
    """Metadata of one operation.

    `low`/`high` are the strengths at level fraction 0 and 1 (AutoAugment's ranges: level 0 is
    the mildest setting, the maximum level the strongest).  A random sign is drawn for every
    application of an op whose `signed` is true.
    """

    name: str
    kind: OpKind
    form: ArgumentForm
    low: float = 0.0
    high: float = 0.0

    @property
    def signed(self) -> bool:
        return self.form in (ArgumentForm.SIGNED, ArgumentForm.FACTOR)

    @property
    def has_magnitude(self) -> bool:
        return self.form is not ArgumentForm.NONE


TRANSLATE_FRACTION = 150.0 / 331.0  # AutoAugment's 150 px on 331 px ImageNet crops

# Arguments: shear = affine coefficient about the top-left corner; translate = fraction of the
# image width/height; rotate = degrees counter-clockwise about the centre; solarize = threshold
# (pixels >= it are inverted); posterize = bits kept (never below 4); enhance ops = PIL factor.
OP_SPECS: tuple[OpSpec, ...] = (
    OpSpec("Identity", OpKind.IDENTITY, ArgumentForm.NONE),
    OpSpec("ShearX", OpKind.GEOMETRIC, ArgumentForm.SIGNED, 0.0, 0.3),
    OpSpec("ShearY", OpKind.GEOMETRIC, ArgumentForm.SIGNED, 0.0, 0.3),
    OpSpec("TranslateX", OpKind.GEOMETRIC, ArgumentForm.SIGNED, 0.0, TRANSLATE_FRACTION),
    OpSpec("TranslateY", OpKind.GEOMETRIC, ArgumentForm.SIGNED, 0.0, TRANSLATE_FRACTION),
    OpSpec("Rotate", OpKind.GEOMETRIC, ArgumentForm.SIGNED, 0.0, 30.0),
    OpSpec("AutoContrast", OpKind.LUT, ArgumentForm.NONE),
    OpSpec("Invert", OpKind.LUT, ArgumentForm.NONE),
    OpSpec("Equalize", OpKind.LUT, ArgumentForm.NONE),
    OpSpec("Solarize", OpKind.LUT, ArgumentForm.PLAIN, 256.0, 0.0),
    OpSpec("Posterize", OpKind.LUT, ArgumentForm.BITS, 8.0, 4.0),
    OpSpec("Contrast", OpKind.LUT, ArgumentForm.FACTOR, 0.0, 0.9),
    OpSpec("Color", OpKind.COLOR, ArgumentForm.FACTOR, 0.0, 0.9),
    OpSpec("Brightness", OpKind.LUT, ArgumentForm.FACTOR, 0.0, 0.9),
    OpSpec("Sharpness", OpKind.SHARPNESS, ArgumentForm.FACTOR, 0.0, 0.9),
)

OP_NAMES: tuple[str, ...] = tuple(spec.name for spec in OP_SPECS)
OP_INDEX: dict[str, int] = {name: index for index, name in enumerate(OP_NAMES)}
IDENTITY_ID = OP_INDEX["Identity"]

# The 14 operations of RandAugment and TrivialAugment (AutoAugment's list without Invert).
RANDAUGMENT_OP_NAMES: tuple[str, ...] = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
)
RANDAUGMENT_MAX_MAGNITUDE = 30  # torchvision's 31 magnitude bins: levels 0..30
TRIVIALAUGMENT_LEVELS = RANDAUGMENT_MAX_MAGNITUDE + 1


def op_id(name: str) -> int:
    """Index of an operation in `OP_SPECS`; raises ValueError for unknown names."""
    try:
        return OP_INDEX[name]
    except KeyError:
        raise ValueError(
            f"unknown augmentation operation {name!r}; expected one of {', '.join(OP_NAMES)}"
        ) from None


def op_spec(op: str | int) -> OpSpec:
    """Metadata of an operation given by name or index."""
    if isinstance(op, str):
        return OP_SPECS[op_id(op)]
    if not 0 <= op < len(OP_SPECS):
        raise ValueError(f"operation index {op} out of range; expected 0..{len(OP_SPECS) - 1}")
    return OP_SPECS[op]


def argument_from_fraction(op: str | int, fraction: float, negate: bool = False) -> float:
    """Argument of `op` at `fraction` (0..1) of its range; `negate` flips signed ops."""
    spec = op_spec(op)
    strength = spec.low + (spec.high - spec.low) * fraction
    if spec.form is ArgumentForm.NONE:
        return 0.0
    if spec.form is ArgumentForm.BITS:
        return float(round(strength))
    if spec.form is ArgumentForm.PLAIN:
        return strength
    signed = -strength if negate else strength
    return 1.0 + signed if spec.form is ArgumentForm.FACTOR else signed


_LOW = torch.tensor([spec.low for spec in OP_SPECS], dtype=torch.float64)
_HIGH = torch.tensor([spec.high for spec in OP_SPECS], dtype=torch.float64)
_FORM_CODES = {form: code for code, form in enumerate(ArgumentForm)}
_FORM = torch.tensor([_FORM_CODES[spec.form] for spec in OP_SPECS], dtype=torch.int64)


def arguments_from_fractions(
    op_ids: torch.Tensor, fractions: torch.Tensor, negate: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample arguments (float64) for per-sample op ids, range fractions and sign flips.

    Mirrors `argument_from_fraction` element by element with the same float64 operations.
    """
    device = op_ids.device
    low, high, form = (column.to(device) for column in (_LOW, _HIGH, _FORM))
    op_ids = op_ids.long()
    low, high, form = low[op_ids], high[op_ids], form[op_ids]
    strength = low + (high - low) * fractions.to(device=device, dtype=torch.float64)
    signed = strength if negate is None else torch.where(negate.to(device), -strength, strength)
    arguments = torch.where(form == _FORM_CODES[ArgumentForm.SIGNED], signed, strength)
    arguments = torch.where(form == _FORM_CODES[ArgumentForm.FACTOR], 1.0 + signed, arguments)
    arguments = torch.where(form == _FORM_CODES[ArgumentForm.BITS], strength.round(), arguments)
    return torch.where(form == _FORM_CODES[ArgumentForm.NONE], 0.0, arguments)


def fill_per_channel(fill: Fill, channels: int) -> tuple[int, ...]:
    """The fill as one uint8 value per channel; a single value serves every channel."""
    values = (fill,) if isinstance(fill, Integral) else tuple(fill)
    if len(values) not in (1, channels):
        raise ValueError(f"fill must hold 1 or {channels} values for {channels}-channel images, "
                         f"got {values}")
    if not all(isinstance(value, Integral) and 0 <= value <= 255 for value in values):
        raise ValueError(f"fill values must lie in 0..255 (uint8), got {values}")
    values = tuple(int(value) for value in values)
    return values * channels if len(values) == 1 else values


def fill_from_mean(mean: Sequence[float]) -> tuple[int, ...]:
    """A data set's per-channel mean in [0, 1] units, rounded to the uint8 fill colour."""
    if not all(0.0 <= value <= 1.0 for value in mean):
        raise ValueError(f"the mean must be given per channel in [0, 1] units, got {tuple(mean)}")
    return tuple(round(value * 255) for value in mean)
