"""Shared contract for every classifier in :mod:`augssl.models`.

Later stages (for example implicit differentiation over the last layer) need the
final linear layer and the penultimate features separately, so every model
exposes ``classifier`` (an ``nn.Linear``) and ``forward_features``.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn


class FeatureClassifier(nn.Module):
    """A network split into a feature extractor and a final ``nn.Linear``.

    Subclasses implement :meth:`forward_features` and assign ``self.classifier``;
    ``forward`` is fixed to ``classifier(forward_features(x))`` so that the
    split is exact for every model.
    """

    classifier: nn.Linear

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward_features(x)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))

    @property
    def feature_dim(self) -> int:
        """Width of the penultimate features (the classifier's input size)."""
        return self.classifier.in_features


def check_io_sizes(num_classes: int, in_channels: int) -> None:
    """Reject sizes that would otherwise fail deep inside layer construction."""
    for arg_name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        # numbers.Integral also admits numpy integers, e.g. a label count from np.unique.
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(
                f"{arg_name} must be a positive int, got {value!r}; "
                f"pass e.g. {arg_name}={10 if arg_name == 'num_classes' else 3}"
            )


def init_conv_bn_linear(model: nn.Module) -> None:
    """He init for convs (fan-out, as in the ResNet family papers), unit BN, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (no bias: BatchNorm follows), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )
