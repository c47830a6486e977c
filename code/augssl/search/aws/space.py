"""The 36-operation search space of AWS AutoAugment and the application of ordered pairs.

Eleven operations with a magnitude, each at levels 3, 6 and 9, plus three without one
(AutoContrast, Equalize, Invert).  An operation is identified by (op, level) and named
"Rotate@6"; the three magnitudes of an op are three separate entries of the space.

Levels are read on AutoAugment's original scale, where level L is L/10 of an op's range
(`LEVEL_SCALE`; the reference code's PARAMETER_MAX).  With L/9 instead, Solarize@9 would get
threshold 0, which inverts every pixel and is exactly Invert: the space would hold a duplicate.

A sub-policy is an ordered pair (op1, op2) of indices into `SEARCH_SPACE`; both operations are
always applied, op1 first.  Ops with a symmetric range draw their sign per image and per step.
The batched path (`plan_pairs` / `apply_pairs`) runs `augment.apply_ops` once per step, which
groups the images by operation: every image gets its own pair without a loop over images.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from PIL import Image

from augssl.augment.batch_transforms import AugmentPlan, apply_plan
from augssl.augment.ops import (
    FILL_GREY,
    Fill,
    argument_from_fraction,
    arguments_from_fractions,
    op_id,
)
from augssl.augment.pil_ops import apply_pil_op, check_pil_image
from augssl.augment.tensor_ops import check_batch

MAGNITUDE_OPS: tuple[str, ...] = (
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Color",
    "Solarize",
    "Posterize",
    "Contrast",
    "Sharpness",
    "Brightness",
)
PARAMETER_FREE_OPS: tuple[str, ...] = ("AutoContrast", "Equalize", "Invert")
SEARCH_LEVELS: tuple[int, ...] = (3, 6, 9)
LEVEL_SCALE = 10


@dataclass(frozen=True)
class SearchOperation:
    """One entry of the search space: an operation of `augment.ops` at one level (None: no
    magnitude)."""

    op: str
    level: int | None

    @property
    def name(self) -> str:
        return self.op if self.level is None else f"{self.op}@{self.level}"

    @property
    def op_id(self) -> int:
        return op_id(self.op)

    @property
    def fraction(self) -> float:
        """Fraction of the op's range (see `augment.ops.argument_from_fraction`)."""
        return 0.0 if self.level is None else self.level / LEVEL_SCALE

    def argument(self, negate: bool = False) -> float:
        return argument_from_fraction(self.op, self.fraction, negate)


SEARCH_SPACE: tuple[SearchOperation, ...] = tuple(
    SearchOperation(op, level) for op in MAGNITUDE_OPS for level in SEARCH_LEVELS
) + tuple(SearchOperation(op, None) for op in PARAMETER_FREE_OPS)
NUM_OPERATIONS = len(SEARCH_SPACE)
OPERATION_NAMES: tuple[str, ...] = tuple(operation.name for operation in SEARCH_SPACE)
_INDEX_OF_NAME = {name: index for index, name in enumerate(OPERATION_NAMES)}

_OP_IDS = torch.tensor([operation.op_id for operation in SEARCH_SPACE], dtype=torch.int64)
_FRACTIONS = torch.tensor([operation.fraction for operation in SEARCH_SPACE], dtype=torch.float64)


def operation_index(operation: str | int) -> int:
    """Index in `SEARCH_SPACE` of a name such as "Rotate@6" (an index is checked and returned)."""
    if isinstance(operation, str):
        try:
            return _INDEX_OF_NAME[operation]
        except KeyError:
            raise ValueError(
                f"unknown search operation {operation!r}; expected a name such as 'Rotate@6', one "
                f"of {', '.join(OPERATION_NAMES)}"
            ) from None
    if not 0 <= int(operation) < NUM_OPERATIONS:
        raise ValueError(
            f"search operation index {operation} out of range; expected 0..{NUM_OPERATIONS - 1}"
        )
    return int(operation)


def _check_indices(indices: torch.Tensor, label: str, count: int | None = None) -> torch.Tensor:
    indices = torch.as_tensor(indices)
    if indices.dim() != 1 or indices.dtype == torch.bool or indices.is_floating_point():
        raise ValueError(
            f"{label} must be a 1-D integer tensor (one operation index per image), got dtype "
            f"{indices.dtype} and shape {tuple(indices.shape)}"
        )
    if count is not None and indices.shape[0] != count:
        raise ValueError(
            f"{label} must hold {count} operation indices (one per image), got {indices.shape[0]}"
        )
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= NUM_OPERATIONS):
        raise ValueError(
            f"{label} holds indices outside 0..{NUM_OPERATIONS - 1}; use indices into SEARCH_SPACE "
            "(see OPERATION_NAMES)"
        )
    return indices.long()


def _random_signs(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str
) -> torch.Tensor:
    """Fair coin flips drawn on the generator's device, returned on `device` (reproducible
    anywhere)."""
    source = generator.device if generator is not None else torch.device("cpu")
    return (torch.rand(shape, generator=generator, device=source) < 0.5).to(device)


def operation_arguments(
    indices: torch.Tensor, negate: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`augment.ops` op ids and arguments of search operations (indices and signs of equal shape).

    Ops without a symmetric range ignore their sign (see `arguments_from_fractions`).
    """
    device = indices.device
    op_ids = _OP_IDS.to(device)[indices]
    fractions = _FRACTIONS.to(device)[indices]
    return op_ids, arguments_from_fractions(op_ids, fractions, negate.to(device))


def plan_pairs(
    first: torch.Tensor,
    second: torch.Tensor,
    generator: torch.Generator | None = None,
    negate: torch.Tensor | None = None,
) -> AugmentPlan:
    """Per-image augmentation ops and arguments (B, 2) for the pairs (first[i], second[i]).

    `negate` (B, 2) fixes the signs of symmetric ops; by default they are drawn from `generator`.
    The plan lives on the device of `first`; `sub_policies` holds the flat pair index op1*36+op2.
    """
    first = _check_indices(first, "first")
    count = first.shape[0]
    second = _check_indices(second, "second", count).to(first.device)
    if negate is None:
        negate = _random_signs((count, 2), generator, first.device)
    elif torch.as_tensor(negate).shape != (count, 2):
        raise ValueError(
            f"negate must have shape ({count}, 2), got {tuple(torch.as_tensor(negate).shape)}"
        )
    pairs = torch.stack([first, second], dim=1)
    op_ids, arguments = operation_arguments(pairs, torch.as_tensor(negate, dtype=torch.bool))
    return AugmentPlan(op_ids, arguments, first * NUM_OPERATIONS + second)


def apply_pairs(
    images: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    generator: torch.Generator | None = None,
    negate: torch.Tensor | None = None,
    fill: Fill = FILL_GREY,
) -> torch.Tensor:
    """Apply SEARCH_SPACE[first[i]] then SEARCH_SPACE[second[i]] to image i of a uint8 batch;
    `fill` colours the pixels geometric ops uncover."""
    check_batch(images)
    first = torch.as_tensor(first)
    if first.shape != (images.shape[0],):
        raise ValueError(
            f"first must hold {images.shape[0]} operation indices (one per image), "
            f"got shape {tuple(first.shape)}"
        )
    plan = plan_pairs(
        first.to(images.device), torch.as_tensor(second).to(images.device), generator, negate
    )
    return apply_plan(images, plan, fill)


def apply_pair_pil(
    image: Image.Image,
    first: str | int,
    second: str | int,
    negate: tuple[bool, bool] | None = None,
    rng: random.Random | None = None,
    fill: Fill = FILL_GREY,
) -> Image.Image:
    """PIL reference of `apply_pairs` for one image; signs come from `negate` or `rng` (else
    `random`)."""
    check_pil_image(image)
    source = rng if rng is not None else random
    for step, operation in enumerate((first, second)):
        entry = SEARCH_SPACE[operation_index(operation)]
        flip = negate[step] if negate is not None else source.random() < 0.5
        image = apply_pil_op(image, entry.op, entry.argument(flip), fill)
    return image
