"""The hyper-optimiser (RMSprop over table rows) and the schedule of the hyper passes.

:class:`HyperOptimizer` is RMSprop with torch's defaults (``alpha=0.99``, ``eps=1e-8``, no
momentum, squared-gradient average starting at 0) and AutoDO's learning rate 0.05, applied
lazily: a step updates the parameters *and* the squared-gradient average only on the rows the
batch used. Dense RMSprop on a per-image table would instead decay every other row's average
at each step (by 0.99^steps between two visits of an image, about 0.01 after 500 steps), so
an image's next update would be scaled up as if it had seen no gradient before; the lazy form
gives each row the RMSprop it would get if it were trained alone on its own visits. Rows that
repeat within a batch (always so for SHA's single row) have their gradients summed first, which
for SHA is exactly the gradient of the shared row, so SHA gets plain dense RMSprop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from augssl.search.autodo.rows import RowSlice

__all__ = ["DEFAULT_HYPER_LR", "HyperOptimizer", "hyper_passes_due"]

DEFAULT_HYPER_LR = 0.05


class HyperOptimizer:
    """Row-wise (lazy) RMSprop over hyper-parameter tables (see the module doc).

    ``tables`` are the learned tables, e.g. ``[*augment.parameters(), *loss_model.parameters()]``.
    The squared-gradient state is float32 whatever the tables' dtype; the update is computed
    in float32 and rounded to the table's dtype.
    """

    def __init__(self, tables: Iterable[nn.Parameter], lr: float = DEFAULT_HYPER_LR,
                 alpha: float = 0.99, eps: float = 1e-8) -> None:
        self.tables = list(tables)
        if not self.tables:
            raise ValueError("HyperOptimizer needs at least one table to learn; the "
                             "augmentation and loss models given have no parameters")
        if lr <= 0 or not 0 <= alpha < 1 or eps <= 0:
            raise ValueError(f"need lr > 0, 0 <= alpha < 1 and eps > 0, got lr={lr}, "
                             f"alpha={alpha}, eps={eps}")
        self.lr, self.alpha, self.eps = lr, alpha, eps
        self.steps = 0
        self.square_avg = [torch.zeros(t.shape, dtype=torch.float32, device=t.device)
                           for t in self.tables]

    def _slot(self, table: nn.Parameter) -> int:
        for slot, known in enumerate(self.tables):
            if known is table:
                return slot
        raise ValueError(f"a slice reads a table of shape {tuple(table.shape)} that this "
                         "HyperOptimizer was not given; build it from the same modules' "
                         "parameters")

    @torch.no_grad()
    def step(self, slices: Sequence[RowSlice], grads: Sequence[torch.Tensor]) -> None:
        """Apply ``grads[j]`` (the gradient for ``slices[j].values``) to the rows it read."""
        if len(slices) != len(grads):
            raise ValueError(f"got {len(slices)} slices but {len(grads)} gradients; pass the "
                             "slices and grads of one HyperGradient together")
        for piece, grad in zip(slices, grads):
            if grad.shape != piece.values.shape:
                raise ValueError(f"gradient of shape {tuple(grad.shape)} does not match its "
                                 f"slice's values {tuple(piece.values.shape)}")
            slot = self._slot(piece.table)
            rows, position = torch.unique(piece.rows, return_inverse=True)
            summed = torch.zeros((len(rows), *grad.shape[1:]), dtype=torch.float32,
                                 device=grad.device).index_add_(0, position, grad.float())
            square_avg = self.square_avg[slot]
            updated_avg = square_avg[rows] * self.alpha + (1 - self.alpha) * summed.square()
            square_avg[rows] = updated_avg
            step = self.lr * summed / (updated_avg.sqrt() + self.eps)
            table = piece.table
            table[rows] = (table[rows].float() - step).to(table.dtype)
        self.steps += 1

    def state_dict(self) -> dict:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps, "steps": self.steps,
                "square_avg": [s.clone() for s in self.square_avg]}

    def load_state_dict(self, state: dict) -> None:
        stored = state["square_avg"]
        shapes = [tuple(s.shape) for s in stored]
        expected = [tuple(t.shape) for t in self.tables]
        if shapes != expected:
            raise ValueError(f"hyper-optimiser state holds tables of shapes {shapes} but this "
                             f"one learns {expected}; resume with the same augmentation and "
                             "loss modes and the same training split")
        self.lr, self.alpha, self.eps = state["lr"], state["alpha"], state["eps"]
        self.steps = int(state["steps"])
        self.square_avg = [s.to(device=t.device, dtype=torch.float32).clone()
                           for s, t in zip(stored, self.tables)]


def hyper_passes_due(epoch: int, warm_epochs: int) -> int:
    """How many hyper passes precede the training pass of 1-based ``epoch`` (ignite's
    ``engine.state.epoch``).

    Epochs ``1 .. warm_epochs`` only train the network (the warm phase; the original uses 50 of
    200). Every later epoch runs one hyper pass, the network held fixed while each batch
    updates the learned tables, and then its training pass, the network trained with the tables
    fixed, as the original's epoch loop does (``implicit-augment.py``: ``hyperHesTrain``, then
    ``innerTrain``). So the network trains in every epoch, as the baselines' does.
    """
    if epoch < 1 or warm_epochs < 0:
        raise ValueError(f"need epoch >= 1 (1-based) and warm_epochs >= 0, got epoch={epoch}, "
                         f"warm_epochs={warm_epochs}")
    return max(0, epoch - warm_epochs)
