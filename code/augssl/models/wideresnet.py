"""Wide ResNet (Zagoruyko & Komodakis, 2016) with pre-activation basic blocks.

WRN-d-k has ``(d - 4) / 6`` blocks in each of three groups of width 16k, 32k
and 64k, after a 3x3 stem conv of 16 channels.

Batch-norm momentum defaults to 0.001 (PyTorch convention: weight of the new
batch in the running average), the value used by the semi-supervised
references that train WRN-28-2 (MixMatch, FixMatch; TensorFlow's decay 0.999).
The slow running average suits training for hundreds of thousands of steps on
strongly augmented batches; for runs of only a few hundred steps the running
statistics lag behind and eval-mode accuracy suffers, so pass
``bn_momentum=0.1`` there.

The activation is the plain ReLU of the original paper.  Some SSL code bases
swap in leaky ReLU (slope 0.1); that is not offered, so that "WRN-28-2" means
one architecture in every comparison made with this package.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import FeatureClassifier, check_io_sizes, init_conv_bn_linear

SSL_BN_MOMENTUM = 0.001


class _PreActBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float,
                 bn_momentum: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, momentum=bn_momentum)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=bn_momentum)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            if needs_projection else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = torch.relu(self.bn1(x))
        # A projection shortcut reads the activated input, as in the reference
        # implementation; an identity shortcut keeps the raw input.
        shortcut = x if self.shortcut is None else self.shortcut(activated)
        out = self.conv1(activated)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + shortcut


class WideResNet(FeatureClassifier):
    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        depth: int = 28,
        width: int = 2,
        dropout: float = 0.0,
        bn_momentum: float = SSL_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        check_io_sizes(num_classes, in_channels)
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                f"WideResNet depth must be 6n+4 with n >= 1 (e.g. 16, 22, 28, 40), got {depth}"
            )
        if width < 1:
            raise ValueError(f"WideResNet width must be a positive int (e.g. 2 or 10), got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        blocks_per_group = (depth - 4) // 6
        widths = (16 * width, 32 * width, 64 * width)

        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)]
        group_in = 16
        for group_index, group_width in enumerate(widths):
            for block_index in range(blocks_per_group):
                stride = 2 if group_index > 0 and block_index == 0 else 1
                layers.append(_PreActBlock(group_in, group_width, stride, dropout, bn_momentum))
                group_in = group_width
        layers += [
            nn.BatchNorm2d(group_in, momentum=bn_momentum),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(group_in, num_classes)
        init_conv_bn_linear(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
