"""A small, CPU-friendly CNN for 28x28 grey-scale images (Fashion-MNIST scale).

Three conv-BN-ReLU-maxpool blocks (32, 64, 128 channels), adaptive average
pooling to a 3x3 grid, then a linear layer: about 104k parameters for 10
classes.  On 28x28 inputs the pooled grid is exactly the last 3x3 map, so the
classifier still sees where features are (global pooling to 1x1 cost about 4
points of Fashion-MNIST accuracy after one epoch); the adaptive pool makes
32x32 and larger inputs work unchanged.

Measured on Fashion-MNIST (SGD + Nesterov, one-cycle lr 0.1, batch 128, no
augmentation, 2 CPU cores): 90.6% test accuracy after 1 epoch, 91.5% after 2.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import FeatureClassifier, check_io_sizes, conv_bn_relu, init_conv_bn_linear

_WIDTHS = (32, 64, 128)
_POOLED_GRID = 3


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_channels, out_channels), nn.MaxPool2d(2))


class SmallCNN(FeatureClassifier):
    def __init__(self, num_classes: int, in_channels: int = 1) -> None:
        super().__init__()
        check_io_sizes(num_classes, in_channels)
        blocks = []
        block_in = in_channels
        for width in _WIDTHS:
            blocks.append(_conv_block(block_in, width))
            block_in = width
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(_POOLED_GRID), nn.Flatten())
        self.classifier = nn.Linear(block_in * _POOLED_GRID**2, num_classes)
        init_conv_bn_linear(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
