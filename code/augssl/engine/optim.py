"""Optimisers and the per-iteration learning-rate schedule."""

from __future__ import annotations

import math

import torch


def build_optimizer(config, parameters) -> torch.optim.Optimizer:
    """SGD (Nesterov by default) or Adam, with the config's lr and weight decay."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str,
              min_ratio: float) -> float:
    """Multiplier of the peak lr at ``step``: linear warm-up, then cosine to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(config, optimizer: torch.optim.Optimizer, total_steps: int):
    """A LambdaLR stepped once per iteration."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, config.num_warmup_steps,
                                          config.lr_schedule, config.min_lr_ratio))
