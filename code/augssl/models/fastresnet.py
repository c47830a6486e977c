"""ResNet-9 from David Page's "How to train your ResNet" (cifar10-fast).

Layout: prep conv 64 -> layer1 (conv 128, max-pool, residual of two convs)
-> layer2 (conv 256, max-pool) -> layer3 (conv 512, max-pool, residual)
-> global max pool -> linear (no bias) -> logits scaled by 0.125.

Where the 0.125 scale lives: the original multiplies the logits by 0.125 after a
bias-free linear layer.  Because ``W (0.125 f) == 0.125 (W f)`` for a bias-free
layer, the scale is applied to the features at the end of
:meth:`FastResNet.forward_features`.  The logits are therefore identical to
the original while ``model.classifier`` stays a plain ``nn.Linear`` and
``forward(x) == classifier(forward_features(x))`` holds exactly.

The original ends with a 4x4 max pool (for 32x32 inputs); an adaptive max pool
gives the same result there and also accepts 28x28 and larger inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import FeatureClassifier, check_io_sizes, conv_bn_relu

LOGIT_SCALE = 0.125


class _Residual(nn.Module):
    """``x + f(x)`` with ``f`` two conv-BN-ReLU units of constant width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(conv_bn_relu(channels, channels),
                                    conv_bn_relu(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


def _downsampling_layer(in_channels: int, out_channels: int, residual: bool) -> nn.Sequential:
    layers = [conv_bn_relu(in_channels, out_channels), nn.MaxPool2d(2)]
    if residual:
        layers.append(_Residual(out_channels))
    return nn.Sequential(*layers)


class FastResNet(FeatureClassifier):
    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        check_io_sizes(num_classes, in_channels)
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, 64),
            _downsampling_layer(64, 128, residual=True),
            _downsampling_layer(128, 256, residual=False),
            _downsampling_layer(256, 512, residual=True),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(512, num_classes, bias=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) * LOGIT_SCALE
