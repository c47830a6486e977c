"""Augmentation-wise weight sharing: fine-tuning copies of the shared weights, and their reward.

Every policy evaluation starts from the shared weights w_share trained in stage 1, fine-tunes
its own copy with the policy being evaluated and reports that copy's validation accuracy.  The
shared weights must stay untouched, and the optimiser must step the copy: an optimiser built on
the shared model's parameters leaves the trained copy exactly at w_share, so every evaluation
would measure the same network.  `fork_model` builds the optimiser itself, on the copy, and
refuses an optimiser factory that reaches for any other parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import torch
from torch import nn

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
REWARD_BEST_EPOCHS = 2


class ForkedModel(NamedTuple):
    """A private copy of the shared model and the optimiser that trains that copy."""

    model: nn.Module
    optimizer: torch.optim.Optimizer


def fork_model(
    shared: nn.Module, optimizer_factory: OptimizerFactory, device: torch.device | str | None = None
) -> ForkedModel:
    """Deep-copy `shared` (parameters, buffers such as BatchNorm statistics, train/eval mode),
    optionally move the copy to `device`, and build `optimizer_factory(copy.parameters())`.

    Raises ValueError if the optimiser holds a parameter that is not the copy's.
    """
    model = copy.deepcopy(shared)
    if device is not None:
        model = model.to(device)
    optimizer = optimizer_factory(model.parameters())
    own = {id(parameter) for parameter in model.parameters()}
    foreign = [
        parameter
        for group in optimizer.param_groups
        for parameter in group["params"]
        if id(parameter) not in own
    ]
    if foreign:
        raise ValueError(
            f"the optimiser factory returned an optimiser over {len(foreign)} parameter "
            "tensor(s) that do not belong to the model copy (the shared weights?); it must build "
            "the optimiser on the parameters it is given, e.g. "
            "lambda params: torch.optim.SGD(params, lr=0.01)"
        )
    return ForkedModel(model, optimizer)


def best_mean_reward(accuracies: Sequence[float], best: int = REWARD_BEST_EPOCHS) -> float:
    """Mean of the `best` highest validation accuracies of one fine-tuning (AWS: best 2 epochs).

    With fewer than `best` values, all of them are averaged.
    """
    if best < 1:
        raise ValueError(
            f"the reward averages the best `best` accuracies; best must be >= 1, got {best}"
        )
    if len(accuracies) == 0:
        raise ValueError(
            "the reward needs at least one validation accuracy of the fine-tuned copy, got none"
        )
    top = sorted((float(accuracy) for accuracy in accuracies), reverse=True)[:best]
    return sum(top) / len(top)
