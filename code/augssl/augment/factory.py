"""The one place where training scripts turn a policy name into an augmentation pipeline.

Named pipelines (the `policy` parameter):

    none            identity
    weak            reflect pad + random crop + random horizontal flip
    cutout          weak + Cutout
    autoaugment     weak + AutoAugment (spec.autoaugment_policy) + Cutout
    randaugment     weak + RandAugment(spec.randaugment_num_ops, spec.randaugment_magnitude)
                    + Cutout
    trivialaugment  weak + TrivialAugment + Cutout

Each name exists as a PIL version (per image, for DataLoader workers) and as a batched version
(uint8 (B, C, H, W) in, same shape, dtype and device out, per-image random choices).  Both fill
the pixels that geometric ops uncover and Cutout erases with `AugmentSpec.fill`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from PIL import Image

from augssl.augment.autoaugment_policies import autoaugment_policy
from augssl.augment.batch_transforms import (
    BatchAutoAugment,
    BatchCompose,
    BatchCutout,
    BatchRandAugment,
    BatchTrivialAugment,
    BatchWeak,
)
from augssl.augment.ops import RANDAUGMENT_MAX_MAGNITUDE, fill_per_channel
from augssl.augment.pil_ops import check_pil_image
from augssl.augment.pil_transforms import (
    PILAutoAugment,
    PILCompose,
    PILCutout,
    PILRandAugment,
    PILTrivialAugment,
    PILWeak,
)
from augssl.augment.tensor_ops import check_batch

POLICY_NAMES: tuple[str, ...] = (
    "none", "weak", "cutout", "autoaugment", "randaugment", "trivialaugment"
)
# `cutout_size` that asks for the default side: half the image side.  The Cutout paper's 16 px
# on 32 px CIFAR-10 images, kept in proportion on other sizes (14 px on 28 px, 48 px on 96 px).
CUTOUT_HALF_SIDE = -1
T = TypeVar("T")


@dataclass(frozen=True)
class AugmentSpec:
    """Image geometry, fill colour and policy settings shared by the PIL and batched pipelines.

    `fill` is the uint8 colour of the pixels that geometric ops uncover and Cutout erases, one
    value per channel: the data set's mean colour (`ops.fill_from_mean`).
    `randaugment_magnitude` is on torchvision's 0..30 scale (31 bins; 9 is torchvision's default,
    30 the top of every AutoAugment range).  `cutout_size` is the side of the Cutout square:
    `CUTOUT_HALF_SIDE` (the default) becomes half the image side, 0 disables Cutout.  `pad` is the
    reflect padding of the weak crop.
    """

    image_size: int
    channels: int
    flip: bool = True
    autoaugment_policy: str = "cifar10"
    randaugment_num_ops: int = 2
    randaugment_magnitude: int = 9
    cutout_size: int = CUTOUT_HALF_SIDE
    pad: int = 4
    fill: tuple[int, ...] = field(kw_only=True)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(
                f"AugmentSpec.channels must be 1 (greyscale) or 3 (RGB), got {self.channels}"
            )
        if self.image_size < 1:
            raise ValueError(
                f"AugmentSpec.image_size must be a positive pixel count, got {self.image_size}"
            )
        if not 0 <= self.pad < self.image_size:
            raise ValueError(
                f"AugmentSpec.pad must lie in 0..{self.image_size - 1} for reflect padding, "
                f"got {self.pad}"
            )
        if self.cutout_size < CUTOUT_HALF_SIDE:
            raise ValueError(
                f"AugmentSpec.cutout_size must be >= 0 (0 disables Cutout) or {CUTOUT_HALF_SIDE} "
                f"(half the image side), got {self.cutout_size}"
            )
        if self.cutout_size == CUTOUT_HALF_SIDE:
            object.__setattr__(self, "cutout_size", self.image_size // 2)  # frozen: resolved once
        object.__setattr__(self, "fill", fill_per_channel(self.fill, self.channels))
        if self.randaugment_num_ops < 0:
            raise ValueError(
                f"AugmentSpec.randaugment_num_ops must be >= 0, got {self.randaugment_num_ops}"
            )
        if not 0 <= self.randaugment_magnitude <= RANDAUGMENT_MAX_MAGNITUDE:
            raise ValueError(
                f"AugmentSpec.randaugment_magnitude must lie in 0..{RANDAUGMENT_MAX_MAGNITUDE} "
                f"(torchvision's scale), got {self.randaugment_magnitude}"
            )
        autoaugment_policy(self.autoaugment_policy)  # raises ValueError listing the valid names

    @property
    def pil_mode(self) -> str:
        return "L" if self.channels == 1 else "RGB"


def check_policy_name(policy: str) -> None:
    if policy not in POLICY_NAMES:
        raise ValueError(
            f"unknown augmentation policy {policy!r}; expected one of {', '.join(POLICY_NAMES)}"
        )


class _PILPipeline:
    def __init__(self, policy: str, spec: AugmentSpec, transform: PILCompose) -> None:
        self.policy = policy
        self.spec = spec
        self.transform = transform

    def __call__(self, image: Image.Image) -> Image.Image:
        check_pil_image(image)
        expected = (self.spec.image_size, self.spec.image_size)
        if image.mode != self.spec.pil_mode or image.size != expected:
            raise ValueError(
                f"augmentation pipeline {self.policy!r} expects {self.spec.pil_mode} images of "
                f"{expected[0]}x{expected[1]} pixels, got {image.mode} "
                f"{image.width}x{image.height}; "
                "fix AugmentSpec.image_size/channels or convert the images"
            )
        return self.transform(image)

    def __repr__(self) -> str:
        return f"PILPipeline({self.policy!r}, {self.spec})"


class _BatchPipeline:
    def __init__(self, policy: str, spec: AugmentSpec, transform: BatchCompose) -> None:
        self.policy = policy
        self.spec = spec
        self.transform = transform

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        check_batch(images)
        expected = (self.spec.channels, self.spec.image_size, self.spec.image_size)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"augmentation pipeline {self.policy!r} expects batches of shape (B, "
                f"{', '.join(map(str, expected))}), got {tuple(images.shape)}; "
                "fix AugmentSpec.image_size/channels or the data"
            )
        return self.transform(images, generator)

    def __repr__(self) -> str:
        return f"BatchPipeline({self.policy!r}, {self.spec})"


def _pipeline_steps(
    policy: str,
    spec: AugmentSpec,
    weak: Callable[[], T],
    strong: dict[str, Callable[[], T]],
    cutout: Callable[[], T],
) -> list[T]:
    check_policy_name(policy)
    if policy == "none":
        return []
    steps = [weak()]
    if policy in strong:
        steps.append(strong[policy]())
    if policy != "weak" and spec.cutout_size > 0:
        steps.append(cutout())
    return steps


def build_pil_transform(
    policy: str, spec: AugmentSpec, rng: random.Random | None = None
) -> Callable[[Image.Image], Image.Image]:
    """PIL version of the named pipeline; `rng` defaults to the (per-worker) `random` module."""
    steps = _pipeline_steps(
        policy,
        spec,
        weak=lambda: PILWeak(spec.pad, spec.flip, rng),
        strong={
            "autoaugment": lambda: PILAutoAugment(spec.autoaugment_policy, rng, spec.fill),
            "randaugment": lambda: PILRandAugment(
                spec.randaugment_num_ops, spec.randaugment_magnitude, rng, spec.fill
            ),
            "trivialaugment": lambda: PILTrivialAugment(rng, spec.fill),
        },
        cutout=lambda: PILCutout(spec.cutout_size, rng, spec.fill),
    )
    return _PILPipeline(policy, spec, PILCompose(steps))


def build_batch_transform(
    policy: str, spec: AugmentSpec
) -> Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]:
    """Batched version of the named pipeline: `transform(images, generator=None)`."""
    steps = _pipeline_steps(
        policy,
        spec,
        weak=lambda: BatchWeak(spec.pad, spec.flip),
        strong={
            "autoaugment": lambda: BatchAutoAugment(spec.autoaugment_policy, spec.fill),
            "randaugment": lambda: BatchRandAugment(
                spec.randaugment_num_ops, spec.randaugment_magnitude, spec.fill
            ),
            "trivialaugment": lambda: BatchTrivialAugment(spec.fill),
        },
        cutout=lambda: BatchCutout(spec.cutout_size, spec.fill),
    )
    return _BatchPipeline(policy, spec, BatchCompose(steps))
