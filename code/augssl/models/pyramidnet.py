"""PyramidNet with bottleneck blocks (Han et al., 2017) regularised by ShakeDrop
(Yamada et al., 2018).

Width grows by ``alpha / (3 n)`` channels every block (``n = (depth - 2) / 9``
bottleneck blocks per stage) from 16 to ``16 + alpha``, times 4 at each
bottleneck output.  Shortcuts are parameter-free: 2x2 average pooling where the
block downsamples, then zero channels appended to match the wider residual.

ShakeDrop multiplies block ``l`` of ``L``'s residual by ``b + alpha - b*alpha``
with ``b ~ Bernoulli(p_l)`` and ``alpha ~ U[-1, 1]`` in the forward pass; the
backward pass uses an independent ``beta ~ U[0, 1]`` in place of ``alpha``.
All three are drawn per sample.  The survival probability decays linearly,
``p_l = 1 - (l / L) (1 - p_L)`` with ``p_L = 0.5`` (the paper's setting).  At
eval time the residual is scaled by its expectation ``p_l``.

The depth-272, alpha-200 network (about 26M parameters) is the one used for
CIFAR in AutoAugment and its successors; other depths/alphas are available for
experiments and tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import FeatureClassifier, check_io_sizes, init_conv_bn_linear

_STEM_WIDTH = 16
_BOTTLENECK_EXPANSION = 4
_LAYERS_PER_BLOCK = 3


class ShakeDropScale(torch.autograd.Function):
    """Scale by ``gate + (1 - gate) * alpha`` forward and ``gate + (1 - gate) * beta`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gate: torch.Tensor, alpha: torch.Tensor,
                beta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, beta)
        return x * (gate + (1 - gate) * alpha)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        gate, beta = ctx.saved_tensors
        return grad_output * (gate + (1 - gate) * beta), None, None, None


def shake_drop(x: torch.Tensor, survival_probability: float, training: bool) -> torch.Tensor:
    if not training:
        return x * survival_probability
    coefficient_shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    gate = torch.bernoulli(torch.full(coefficient_shape, survival_probability, device=x.device,
                                      dtype=x.dtype))
    alpha = torch.empty(coefficient_shape, device=x.device, dtype=x.dtype).uniform_(-1.0, 1.0)
    beta = torch.rand(coefficient_shape, device=x.device, dtype=x.dtype)
    return ShakeDropScale.apply(x, gate, alpha, beta)


class _ShakeDropBottleneck(nn.Module):
    def __init__(self, in_channels: int, planes: int, stride: int,
                 survival_probability: float) -> None:
        super().__init__()
        out_channels = planes * _BOTTLENECK_EXPANSION
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, planes, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        # ceil_mode keeps the shortcut's map the same size as the strided conv's on odd inputs.
        self.downsample = nn.AvgPool2d(2, ceil_mode=True) if stride != 1 else nn.Identity()
        self.survival_probability = survival_probability
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = shake_drop(self.residual(x), self.survival_probability, self.training)
        shortcut = self.downsample(x)
        missing_channels = self.out_channels - shortcut.shape[1]
        return residual + F.pad(shortcut, (0, 0, 0, 0, 0, missing_channels))


class PyramidNet(FeatureClassifier):
    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        depth: int = 272,
        alpha: float = 200,
        final_survival_probability: float = 0.5,
    ) -> None:
        super().__init__()
        check_io_sizes(num_classes, in_channels)
        if depth < 11 or (depth - 2) % (3 * _LAYERS_PER_BLOCK) != 0:
            raise ValueError(
                "PyramidNet (bottleneck) depth must be 9n+2 with n >= 1 (e.g. 11, 110, 272), "
                f"got {depth}"
            )
        if alpha < 0:
            raise ValueError("PyramidNet alpha (total width increase) must be >= 0 (e.g. 48 or "
                             f"200), got {alpha}")
        if not 0.0 < final_survival_probability <= 1.0:
            raise ValueError(
                f"final_survival_probability must lie in (0, 1] (0.5 in the ShakeDrop paper), "
                f"got {final_survival_probability}"
            )
        blocks_per_stage = (depth - 2) // (3 * _LAYERS_PER_BLOCK)
        total_blocks = 3 * blocks_per_stage
        width_step = alpha / total_blocks

        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, _STEM_WIDTH, 3, padding=1, bias=False),
            nn.BatchNorm2d(_STEM_WIDTH),
        ]
        block_in = _STEM_WIDTH
        width = float(_STEM_WIDTH)
        for block_index in range(total_blocks):
            width += width_step
            stride = 2 if block_index in (blocks_per_stage, 2 * blocks_per_stage) else 1
            survival = 1.0 - (block_index + 1) / total_blocks * (1.0 - final_survival_probability)
            block = _ShakeDropBottleneck(block_in, int(round(width)), stride, survival)
            layers.append(block)
            block_in = block.out_channels
        layers += [
            nn.BatchNorm2d(block_in),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(block_in, num_classes)
        init_conv_bn_linear(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
