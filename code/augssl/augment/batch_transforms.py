"""Random augmentation policies on uint8 batches (B, C, H, W), with per-image random choices.

Every transform is called as `transform(images, generator=None)`.  Random numbers are drawn on
the generator's device (the default CPU generator when None) and moved to the batch's device,
so a seeded generator gives the same result on any device.  Images are never looped over in
Python: all per-image choices are tensors and `tensor_ops.apply_ops` groups the work.  `fill`
colours the pixels geometric ops uncover and Cutout erases (see `ops`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from augssl.augment.autoaugment_policies import policy_tensors
from augssl.augment.ops import (
    FILL_GREY,
    IDENTITY_ID,
    RANDAUGMENT_MAX_MAGNITUDE,
    RANDAUGMENT_OP_NAMES,
    TRIVIALAUGMENT_LEVELS,
    Fill,
    arguments_from_fractions,
    op_id,
)
from augssl.augment.tensor_ops import apply_ops, check_batch, cutout, pad_crop_flip

BatchTransform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]

_RANDAUGMENT_OP_IDS = torch.tensor(
    [op_id(name) for name in RANDAUGMENT_OP_NAMES], dtype=torch.int64
)


def _source_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _uniform(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    values = torch.rand(
        shape, generator=generator, device=_source_device(generator), dtype=torch.float64
    )
    return values.to(device)


def _integers(
    high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    values = torch.randint(0, high, shape, generator=generator, device=_source_device(generator))
    return values.to(device)


class AugmentPlan(NamedTuple):
    """Per-image operations of a policy: `op_ids` and `arguments` have shape (B, steps), applied
    step by step; `sub_policies` holds AutoAugment's chosen sub-policy per image (else None)."""

    op_ids: torch.Tensor
    arguments: torch.Tensor
    sub_policies: torch.Tensor | None = None


def apply_plan(images: torch.Tensor, plan: AugmentPlan, fill: Fill = FILL_GREY) -> torch.Tensor:
    for step in range(plan.op_ids.shape[1]):
        images = apply_ops(images, plan.op_ids[:, step], plan.arguments[:, step], fill)
    return images


def _signed_arguments(
    op_ids: torch.Tensor,
    fractions: torch.Tensor,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    negate = _uniform(tuple(op_ids.shape), generator, device) < 0.5
    return arguments_from_fractions(op_ids, fractions, negate)


class _BatchPolicy(ABC):
    def __init__(self, fill: Fill = FILL_GREY) -> None:
        self.fill = fill

    @abstractmethod
    def plan(
        self,
        count: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> AugmentPlan:
        """Draw the per-image operations for `count` images."""

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        check_batch(images)
        return apply_plan(images, self.plan(images.shape[0], generator, images.device), self.fill)


class BatchAutoAugment(_BatchPolicy):
    """AutoAugment with a uniformly drawn sub-policy per image (see `PILAutoAugment`)."""

    def __init__(self, policy: str = "cifar10", fill: Fill = FILL_GREY) -> None:
        super().__init__(fill)
        self.policy_name = policy
        self._op_ids, self._probabilities, self._fractions = policy_tensors(policy)

    def plan(
        self,
        count: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> AugmentPlan:
        device = torch.device(device)
        chosen = _integers(len(self._op_ids), (count,), generator, device)
        fires = _uniform((count, 2), generator, device) < self._probabilities.to(device)[chosen]
        op_ids = torch.where(fires, self._op_ids.to(device)[chosen], IDENTITY_ID)
        arguments = _signed_arguments(op_ids, self._fractions.to(device)[chosen], generator, device)
        return AugmentPlan(op_ids, arguments, chosen)


class BatchRandAugment(_BatchPolicy):
    """`num_ops` steps; each image gets its own uniformly drawn op per step, at `magnitude`/30."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, fill: Fill = FILL_GREY) -> None:
        super().__init__(fill)
        self.num_ops = num_ops
        self.magnitude = magnitude

    def plan(
        self,
        count: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> AugmentPlan:
        device = torch.device(device)
        choice = _integers(len(_RANDAUGMENT_OP_IDS), (count, self.num_ops), generator, device)
        op_ids = _RANDAUGMENT_OP_IDS.to(device)[choice]
        fraction = self.magnitude / RANDAUGMENT_MAX_MAGNITUDE
        fractions = torch.full(op_ids.shape, fraction, dtype=torch.float64, device=device)
        return AugmentPlan(op_ids, _signed_arguments(op_ids, fractions, generator, device))


class BatchTrivialAugment(_BatchPolicy):
    """One uniformly drawn op per image at a uniformly drawn level of 0..30."""

    def plan(
        self,
        count: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> AugmentPlan:
        device = torch.device(device)
        choice = _integers(len(_RANDAUGMENT_OP_IDS), (count, 1), generator, device)
        levels = _integers(TRIVIALAUGMENT_LEVELS, (count, 1), generator, device).to(torch.float64)
        fractions = levels / torch.full_like(levels, RANDAUGMENT_MAX_MAGNITUDE)
        op_ids = _RANDAUGMENT_OP_IDS.to(device)[choice]
        return AugmentPlan(op_ids, _signed_arguments(op_ids, fractions, generator, device))


class BatchCutout:
    """Square of side `size` in the fill colour per image, centre uniform over the image (size 0:
    no-op)."""

    def __init__(self, size: int, fill: Fill = FILL_GREY) -> None:
        self.size = size
        self.fill = fill

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        check_batch(images)
        count, _, height, width = images.shape
        centre_y = _integers(height, (count,), generator, images.device)
        centre_x = _integers(width, (count,), generator, images.device)
        return cutout(images, centre_y, centre_x, self.size, self.fill)


class BatchWeak:
    """Reflect-pad by `pad`, random crop back to the original size, random horizontal flip."""

    def __init__(self, pad: int = 4, flip: bool = True) -> None:
        self.pad = pad
        self.flip = flip

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        check_batch(images)
        count, device = images.shape[0], images.device
        offsets = _integers(2 * self.pad + 1, (2, count), generator, device)
        if self.flip:
            flips = _uniform((count,), generator, device) < 0.5
        else:
            flips = torch.zeros(count, dtype=torch.bool, device=device)
        return pad_crop_flip(images, offsets[0], offsets[1], flips, self.pad)


class BatchCompose:
    """Applies batched transforms in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        self.transforms = tuple(transforms)

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        for transform in self.transforms:
            images = transform(images, generator)
        return images
