"""Shake-Shake regularised ResNet-26 (Gastaldi, 2017).

Each residual block has two identical branches (ReLU-conv3x3-BN-ReLU-conv3x3-BN)
mixed as ``a * b1 + (1 - a) * b2``.  In training, ``a`` is drawn uniformly per
sample for the forward pass and an independent uniform ``b`` replaces it in the
backward pass ("Shake-Shake-Image", the paper's best CIFAR setting); in eval
mode both are 0.5.  26 layers = stem conv + 3 stages x 4 blocks x 2 convs + the
classifier; "2x32d" means 2 branches and 32 channels in the first stage
(doubling at each later stage).

When the width or resolution changes, the shortcut is the paper's: two 1x1
convs to half the channels each, the second reading the input shifted by one
pixel so that the strided sampling sees the other pixel grid, concatenated and
batch-normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import FeatureClassifier, check_io_sizes, init_conv_bn_linear

_STEM_WIDTH = 16
_BLOCKS_PER_STAGE = 4


class ShakeShakeMix(torch.autograd.Function):
    """``alpha * x1 + (1 - alpha) * x2`` forward, gradients weighted by ``beta`` / ``1 - beta``."""

    @staticmethod
    def forward(ctx, x1: torch.Tensor, x2: torch.Tensor, alpha: torch.Tensor,
                beta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(beta)
        return alpha * x1 + (1 - alpha) * x2

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (beta,) = ctx.saved_tensors
        return beta * grad_output, (1 - beta) * grad_output, None, None


def shake_shake(x1: torch.Tensor, x2: torch.Tensor, training: bool) -> torch.Tensor:
    """Mix two branch outputs: random per-sample coefficients in training, the mean otherwise."""
    if not training:
        return 0.5 * (x1 + x2)
    coefficient_shape = (x1.shape[0],) + (1,) * (x1.dim() - 1)
    alpha = torch.rand(coefficient_shape, device=x1.device, dtype=x1.dtype)
    beta = torch.rand(coefficient_shape, device=x1.device, dtype=x1.dtype)
    return ShakeShakeMix.apply(x1, x2, alpha, beta)


def _branch(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class _ShiftedPairShortcut(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.stride = stride
        self.conv_aligned = nn.Conv2d(in_channels, half, 1, bias=False)
        self.conv_shifted = nn.Conv2d(in_channels, out_channels - half, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The branches see ReLU(x); the projection reads the same activations.
        x = F.relu(x)
        aligned = x[:, :, :: self.stride, :: self.stride]
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))[:, :, :: self.stride, :: self.stride]
        return self.bn(torch.cat([self.conv_aligned(aligned), self.conv_shifted(shifted)], dim=1))


class _ShakeShakeBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.branch1 = _branch(in_channels, out_channels, stride)
        self.branch2 = _branch(in_channels, out_channels, stride)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = (_ShiftedPairShortcut(in_channels, out_channels, stride)
                         if needs_projection else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + shake_shake(self.branch1(x), self.branch2(x), self.training)


class ShakeShakeResNet(FeatureClassifier):
    def __init__(self, num_classes: int, in_channels: int = 3, base_width: int = 32) -> None:
        super().__init__()
        check_io_sizes(num_classes, in_channels)
        if base_width < 2:
            raise ValueError(f"base_width must be an int >= 2 (e.g. 32, 96, 112), got {base_width}")
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, _STEM_WIDTH, 3, padding=1, bias=False),
            nn.BatchNorm2d(_STEM_WIDTH),
        ]
        stage_in = _STEM_WIDTH
        for stage_index in range(3):
            stage_width = base_width * 2**stage_index
            for block_index in range(_BLOCKS_PER_STAGE):
                stride = 2 if stage_index > 0 and block_index == 0 else 1
                layers.append(_ShakeShakeBlock(stage_in, stage_width, stride))
                stage_in = stage_width
        layers += [nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(stage_in, num_classes)
        init_conv_bn_linear(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
