"""The biased training set as an AutoDO run trains on it.

:func:`draw_biased_split` optionally shrinks the clean data set to a class-balanced pool before
:func:`augssl.data.bias.make_biased_split` holds out the validation split and biases the rest,
so that small experiments keep the same recipe as full ones.

:class:`TrainingRows` turns the indices a loader yields (positions in the full training set)
into rows of the biased set (positions ``0 .. N-1``, the rows of every per-image table) and the
labels the run trains on (noisy where the split redrew them). Loaders therefore stay ordinary
loaders over the full training set restricted to ``split.train_indices``: one copy of the images
serves training, validation and hyper-gradient steps, for in-memory and folder data alike.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from augssl.data.bias import BiasedSplit, make_biased_split
from augssl.data.splits import make_splits

__all__ = ["TrainingRows", "draw_biased_split"]

# Keeps the pool draw apart from the streams make_biased_split derives from (seed, run).
_POOL_STREAM = 1


def draw_biased_split(targets: np.ndarray, num_classes: int, num_validation: int,
                      pool_size: int | None, imbalance_ratio: float, noise_ratio: float,
                      seed: int, run: int) -> BiasedSplit:
    """A :class:`BiasedSplit` of the full training set's clean ``targets``.

    ``pool_size`` None uses every image. Otherwise ``num_validation + pool_size`` images are
    first drawn class-balanced (a pure function of ``seed`` and ``run``); the validation split
    is held out of that pool and the bias is imposed on the ``pool_size`` images left. Indices
    in the result always refer to the full training set.
    """
    targets = np.asarray(targets)
    if pool_size is None:
        return make_biased_split(targets, num_classes, num_validation, imbalance_ratio,
                                 noise_ratio, seed, run)
    pool_seed = int(np.random.SeedSequence([seed, run, _POOL_STREAM]).generate_state(1)[0])
    drawn = make_splits(targets, pool_size, num_validation, pool_seed, num_classes)
    pool = np.union1d(drawn.labelled, drawn.validation)
    split = make_biased_split(targets[pool], num_classes, num_validation, imbalance_ratio,
                              noise_ratio, seed, run)
    # pool is sorted, so mapping sorted positions through it keeps them sorted
    return dataclasses.replace(split, train_indices=pool[split.train_indices],
                               validation_indices=pool[split.validation_indices])


class TrainingRows:
    """Rows of the biased training set and their training labels, looked up by the indices
    (into the full training set of ``dataset_size`` images) that a loader yields."""

    def __init__(self, split: BiasedSplit, dataset_size: int, device: torch.device) -> None:
        if len(split.train_indices) and split.train_indices.max() >= dataset_size:
            raise ValueError(f"the biased split indexes image {split.train_indices.max()} but "
                             f"the training set has {dataset_size} images: it was drawn from "
                             "another data set; draw it again from this one")
        row_of = torch.full((dataset_size,), -1, dtype=torch.long)
        row_of[torch.as_tensor(split.train_indices)] = torch.arange(len(split))
        self.row_of = row_of.to(device)
        self.targets = torch.as_tensor(split.train_targets, dtype=torch.long).to(device)

    def __call__(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, training labels) of a batch. Images outside the biased set get row -1: only
        pass batches drawn from ``split.train_indices``."""
        rows = self.row_of[indices.to(self.row_of.device)]
        return rows, self.targets[rows]
