"""Mixed precision through torch.amp: bf16 on the CPU, fp16 with loss scaling on CUDA."""

from __future__ import annotations

import contextlib

import torch

from augssl.config import ConfigError


class Precision:
    """Autocast context and gradient scaler for one device and ``amp`` mode."""

    def __init__(self, mode: str, device: torch.device):
        self.device_type = device.type
        if mode == "auto":
            mode = "fp16" if device.type == "cuda" else "bf16"
        if mode == "fp16" and device.type != "cuda":
            raise ConfigError("amp=fp16 needs a CUDA device: use amp=bf16 (or auto) on the CPU.")
        self.mode = mode
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        self.scaler = torch.amp.GradScaler("cuda", enabled=mode == "fp16")

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
