"""torchvision's ResNet-18 / ResNet-50 with a stem sized for the input images.

``small_input=True`` (the default, since this package targets 28x28 and 32x32
data sets) swaps the ImageNet stem (7x7 stride-2 conv + 3x3 stride-2 max pool,
a 4x reduction) for a 3x3 stride-1 conv and no pool, the usual CIFAR
adaptation: on 32x32 images the ImageNet stem would leave a 1x1 map before the
last stage.  ``small_input=False`` keeps torchvision's stem for larger images;
only its input channel count changes.

The body is built by ``torchvision.models.resnet18/50`` (no pretrained
weights) so it stays the reference architecture; its ``fc`` becomes
``classifier`` and the rest (ending in global average pooling) is the feature
extractor.
"""

from __future__ import annotations

from typing import Callable

import torch
import torchvision
from torch import nn

from ._base import FeatureClassifier, check_io_sizes

_STEM_WIDTH = 64


def _stem_conv(in_channels: int, kernel_size: int, stride: int) -> nn.Conv2d:
    conv = nn.Conv2d(
        in_channels, _STEM_WIDTH, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
    )
    # Same init torchvision gives the convs it builds itself.
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


class TorchvisionResNet(FeatureClassifier):
    def __init__(
        self,
        constructor: Callable[..., torchvision.models.ResNet],
        num_classes: int,
        in_channels: int = 3,
        small_input: bool = True,
    ) -> None:
        super().__init__()
        check_io_sizes(num_classes, in_channels)
        body = constructor(weights=None, num_classes=num_classes)
        if small_input:
            body.conv1 = _stem_conv(in_channels, kernel_size=3, stride=1)
            body.maxpool = nn.Identity()
        elif in_channels != body.conv1.in_channels:
            body.conv1 = _stem_conv(in_channels, kernel_size=7, stride=2)
        self.classifier = body.fc
        body.fc = nn.Identity()
        self.body = body

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def resnet18(num_classes: int, in_channels: int = 3, small_input: bool = True) -> TorchvisionResNet:
    return TorchvisionResNet(torchvision.models.resnet18, num_classes, in_channels, small_input)


def resnet50(num_classes: int, in_channels: int = 3, small_input: bool = True) -> TorchvisionResNet:
    return TorchvisionResNet(torchvision.models.resnet50, num_classes, in_channels, small_input)
