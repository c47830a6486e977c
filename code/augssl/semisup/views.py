"""The views of one training step through the network together."""

from __future__ import annotations

import torch


def forward_views(model, views: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The logits of each view from one forward pass over their concatenation, as the official
    UDA and FixMatch code do: the views are one BatchNorm batch (normalised together, running
    statistics moved once per step) and the network runs once."""
    return model(torch.cat(views)).split([len(v) for v in views])
