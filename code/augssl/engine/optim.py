"""Optimisers and the per-iteration learning-rate schedule."""

from __future__ import annotations

import math

import torch


def build_optimizer(config, parameters) -> torch.optim.Optimizer:
    """SGD (Nesterov by default) or Adam, with the config's lr and weight decay (``parameters``
    may be groups that set their own, see ``weight_decay_groups``)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


def weight_decay_groups(model: torch.nn.Module) -> list[dict]:
    """Parameter groups where only the weights of convolutions and linear layers decay: the 1-D
    parameters (biases, normalisation scales and shifts) get no weight decay, as in the FixMatch
    reference code (kekmodel/FixMatch-pytorch groups them by the names 'bias' and 'bn')."""
    decayed = [p for p in model.parameters() if p.ndim > 1]
    exempt = [p for p in model.parameters() if p.ndim <= 1]
    return [group for group in ({"params": decayed}, {"params": exempt, "weight_decay": 0.0})
            if group["params"]]


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str,
              min_ratio: float) -> float:
    """Multiplier of the peak lr at ``step``: linear warm-up, then the schedule over the rest.

    ``cosine`` falls as half a cosine period to ``min_ratio``; ``cosine_7_16`` is FixMatch's
    cos(7 pi k / (16 K)) at progress k / K, which ends at cos(7 pi / 16) = 0.195 (its end is
    fixed: ``min_ratio`` does not apply); ``constant`` stays at 1.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "cosine_7_16":
        return math.cos(7.0 * math.pi * progress / 16.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(config, optimizer: torch.optim.Optimizer, total_steps: int,
                    first_step: int = 0):
    """A LambdaLR stepped once per iteration; ``first_step``: where along the schedule of
    ``total_steps`` its first iteration stands (a run that continues another's schedule)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(first_step + step, total_steps,
                                          config.num_warmup_steps, config.lr_schedule,
                                          config.min_lr_ratio))
