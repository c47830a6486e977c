"""Batches of rows read from a hyper-parameter table.

AutoDO keeps learned parameters in tables with one row per training image (SEP augmentation,
loss weights, soft labels) or a single shared row (SHA augmentation). A training batch touches
only a few rows, so the hyper-gradient is taken with respect to a float32 leaf copy of those rows
rather than the whole table: the gradient then has the batch's size, not the data set's, and the
optimiser writes it back row by row (:class:`~augssl.search.autodo.hyperopt.HyperOptimizer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True, eq=False)
class RowSlice:
    """``values[j]`` is a copy of ``table[rows[j]]`` that requires grad; rows may repeat."""

    table: nn.Parameter
    rows: torch.Tensor
    values: torch.Tensor


def take_rows(table: nn.Parameter, rows: torch.Tensor) -> RowSlice:
    """A :class:`RowSlice` of ``table``: rows are int64 on the table's device."""
    rows = torch.as_tensor(rows, dtype=torch.long, device=table.device)
    values = table.detach()[rows].float().requires_grad_(True)
    return RowSlice(table=table, rows=rows, values=values)
