"""The three published AutoAugment policies (Cubuk et al., 2019, appendix tables).

Each sub-policy is two (operation, probability, level) steps with levels on AutoAugment's
0..9 scale.  Operations without a magnitude (AutoContrast, Equalize, Invert) carry level 0,
which is ignored.
"""

from __future__ import annotations

import torch

from augssl.augment.ops import op_id

Step = tuple[str, float, int]
SubPolicy = tuple[Step, Step]

AUTOAUGMENT_MAX_LEVEL = 9

CIFAR10_POLICY: tuple[SubPolicy, ...] = (
    (("Invert", 0.1, 0), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 0), ("Equalize", 0.9, 0)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 0), ("Equalize", 0.5, 0)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 0), ("AutoContrast", 0.4, 0)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 0)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 0), ("Equalize", 0.6, 0)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 0)),
    (("AutoContrast", 0.8, 0), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 0)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 0), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 0), ("Invert", 0.1, 0)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 0)),
)

SVHN_POLICY: tuple[SubPolicy, ...] = (
    (("ShearX", 0.9, 4), ("Invert", 0.2, 0)),
    (("ShearY", 0.9, 8), ("Invert", 0.7, 0)),
    (("Equalize", 0.6, 0), ("Solarize", 0.6, 6)),
    (("Invert", 0.9, 0), ("Equalize", 0.6, 0)),
    (("Equalize", 0.6, 0), ("Rotate", 0.9, 3)),
    (("ShearX", 0.9, 4), ("AutoContrast", 0.8, 0)),
    (("ShearY", 0.9, 8), ("Invert", 0.4, 0)),
    (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
    (("Invert", 0.9, 0), ("AutoContrast", 0.8, 0)),
    (("Equalize", 0.6, 0), ("Rotate", 0.9, 3)),
    (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
    (("ShearY", 0.8, 8), ("Invert", 0.7, 0)),
    (("Equalize", 0.9, 0), ("TranslateY", 0.6, 6)),
    (("Invert", 0.9, 0), ("Equalize", 0.6, 0)),
    (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
    (("Invert", 0.8, 0), ("TranslateY", 0.0, 2)),
    (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
    (("Invert", 0.6, 0), ("Rotate", 0.8, 4)),
    (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
    (("ShearX", 0.1, 6), ("Invert", 0.6, 0)),
    (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
    (("ShearY", 0.8, 4), ("Invert", 0.8, 0)),
    (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
    (("ShearY", 0.8, 5), ("AutoContrast", 0.7, 0)),
    (("ShearX", 0.7, 2), ("Invert", 0.1, 0)),
)

IMAGENET_POLICY: tuple[SubPolicy, ...] = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.8, 0), ("Equalize", 0.6, 0)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, 0), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 0), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 0)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, 0)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 0), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 0)),
    (("Equalize", 0.0, 0), ("Equalize", 0.8, 0)),
    (("Invert", 0.6, 0), ("Equalize", 1.0, 0)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 0)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 0)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 0)),
    (("Equalize", 0.4, 0), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 0)),
    (("Invert", 0.6, 0), ("Equalize", 1.0, 0)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 0), ("Equalize", 0.6, 0)),
)

AUTOAUGMENT_POLICIES: dict[str, tuple[SubPolicy, ...]] = {
    "cifar10": CIFAR10_POLICY,
    "svhn": SVHN_POLICY,
    "imagenet": IMAGENET_POLICY,
}
AUTOAUGMENT_POLICY_NAMES: tuple[str, ...] = tuple(AUTOAUGMENT_POLICIES)


def autoaugment_policy(name: str) -> tuple[SubPolicy, ...]:
    try:
        return AUTOAUGMENT_POLICIES[name]
    except KeyError:
        raise ValueError(
            f"unknown AutoAugment policy {name!r}; expected one of "
            f"{', '.join(AUTOAUGMENT_POLICY_NAMES)}"
        ) from None


def policy_tensors(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(op ids, probabilities, level fractions), each of shape (num_sub_policies, 2)."""
    policy = autoaugment_policy(name)
    op_ids = torch.tensor([[op_id(step[0]) for step in sub] for sub in policy], dtype=torch.int64)
    probabilities = torch.tensor([[step[1] for step in sub] for sub in policy], dtype=torch.float64)
    fractions = torch.tensor(
        [[step[2] / AUTOAUGMENT_MAX_LEVEL for step in sub] for sub in policy], dtype=torch.float64
    )
    return op_ids, probabilities, fractions
