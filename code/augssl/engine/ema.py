"""Exponential moving average of a model's parameters, used for evaluation when enabled."""

from __future__ import annotations

import copy

import torch


# Not ignite's EMAHandler: its warm-up is a linear ramp over fixed iterations, not the schedule
# below; it keeps no update count for checkpoints and shares, not copies, the model's buffers.
class ParameterEMA:
    """Keeps ``decay``-averaged parameters; buffers (BN statistics) are copied as they are.

    Update ``n`` (from 0) uses the decay ``min(decay, (1 + n) / (10 + n))``: early updates move
    the average quickly, so that a run much shorter than ``1 / (1 - decay)`` steps is not
    evaluated with weights still close to their random initialisation (0.999 over 600 plain
    updates would keep 55% of it).
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def decay_at(self, update: int) -> float:
        return min(self.decay, (1 + update) / (10 + update))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - self.decay_at(self.updates))
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers()):
            ema_buffer.copy_(buffer)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"weights": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
