"""Random augmentation policies on single PIL images (for DataLoader workers).

Randomness comes from Python's `random` module by default, which PyTorch reseeds in every
DataLoader worker; pass `rng=random.Random(seed)` for a reproducible stream.  `fill` colours
the pixels geometric ops uncover and Cutout erases (see `ops`).  The batched counterparts in
`batch_transforms` draw the same kinds of choices per image.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from types import ModuleType

from PIL import Image

from augssl.augment.autoaugment_policies import AUTOAUGMENT_MAX_LEVEL, autoaugment_policy
from augssl.augment.ops import (
    FILL_GREY,
    RANDAUGMENT_MAX_MAGNITUDE,
    RANDAUGMENT_OP_NAMES,
    TRIVIALAUGMENT_LEVELS,
    Fill,
    argument_from_fraction,
)
from augssl.augment.pil_ops import apply_pil_op, check_pil_image, cutout_pil, pad_crop_flip_pil

PILTransform = Callable[[Image.Image], Image.Image]


class _RandomPILTransform:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng

    @property
    def rng(self) -> random.Random | ModuleType:
        # Without an explicit generator use the `random` module's functions, looked up at call
        # time, so every DataLoader worker draws from its own reseeded stream.
        return self._rng if self._rng is not None else random


class _PILOpPolicy(_RandomPILTransform):
    """A policy of table operations; geometric ones fill what they uncover with `fill`."""

    def __init__(self, rng: random.Random | None = None, fill: Fill = FILL_GREY) -> None:
        super().__init__(rng)
        self.fill = fill

    def _apply_random_sign(self, image: Image.Image, name: str, fraction: float) -> Image.Image:
        negate = self.rng.random() < 0.5
        return apply_pil_op(image, name, argument_from_fraction(name, fraction, negate), self.fill)


class PILAutoAugment(_PILOpPolicy):
    """One uniformly drawn sub-policy per image; each step fires with its probability."""

    def __init__(
        self, policy: str = "cifar10", rng: random.Random | None = None, fill: Fill = FILL_GREY
    ) -> None:
        super().__init__(rng, fill)
        self.policy_name = policy
        self.sub_policies = autoaugment_policy(policy)

    def __call__(self, image: Image.Image) -> Image.Image:
        check_pil_image(image)
        for name, probability, level in self.rng.choice(self.sub_policies):
            if self.rng.random() < probability:
                image = self._apply_random_sign(image, name, level / AUTOAUGMENT_MAX_LEVEL)
        return image


class PILRandAugment(_PILOpPolicy):
    """`num_ops` uniformly drawn operations, all at `magnitude` on the 0..30 scale."""

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: int = 9,
        rng: random.Random | None = None,
        fill: Fill = FILL_GREY,
    ) -> None:
        super().__init__(rng, fill)
        self.num_ops = num_ops
        self.magnitude = magnitude

    def __call__(self, image: Image.Image) -> Image.Image:
        check_pil_image(image)
        for _ in range(self.num_ops):
            name = self.rng.choice(RANDAUGMENT_OP_NAMES)
            image = self._apply_random_sign(image, name, self.magnitude / RANDAUGMENT_MAX_MAGNITUDE)
        return image


class PILTrivialAugment(_PILOpPolicy):
    """One uniformly drawn operation at a uniformly drawn level of 0..30 (RandAugment ranges)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        check_pil_image(image)
        name = self.rng.choice(RANDAUGMENT_OP_NAMES)
        level = self.rng.randrange(TRIVIALAUGMENT_LEVELS)
        return self._apply_random_sign(image, name, level / RANDAUGMENT_MAX_MAGNITUDE)


class PILCutout(_RandomPILTransform):
    """Square of side `size` in the fill colour, centre uniform over the image (size 0: no-op)."""

    def __init__(self, size: int, rng: random.Random | None = None, fill: Fill = FILL_GREY) -> None:
        super().__init__(rng)
        self.size = size
        self.fill = fill

    def __call__(self, image: Image.Image) -> Image.Image:
        centre_y = self.rng.randrange(image.height)
        centre_x = self.rng.randrange(image.width)
        return cutout_pil(image, centre_y, centre_x, self.size, self.fill)


class PILWeak(_RandomPILTransform):
    """Reflect-pad by `pad`, random crop back to the original size, random horizontal flip."""

    def __init__(self, pad: int = 4, flip: bool = True, rng: random.Random | None = None) -> None:
        super().__init__(rng)
        self.pad = pad
        self.flip = flip

    def __call__(self, image: Image.Image) -> Image.Image:
        offset_y = self.rng.randint(0, 2 * self.pad)
        offset_x = self.rng.randint(0, 2 * self.pad)
        flip = self.flip and self.rng.random() < 0.5
        return pad_crop_flip_pil(image, offset_y, offset_x, flip, self.pad)


class PILCompose:
    """Applies transforms in order."""

    def __init__(self, transforms: Sequence[PILTransform]) -> None:
        self.transforms = tuple(transforms)

    def __call__(self, image: Image.Image) -> Image.Image:
        for transform in self.transforms:
            image = transform(image)
        return image
