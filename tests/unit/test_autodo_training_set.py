"""The biased training set an AutoDO run trains on: the clean pool, rows and noisy labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augssl.data.bias import make_biased_split
from augssl.search.autodo import TrainingRows, draw_biased_split


def _targets(per_class: int, num_classes: int = 10) -> np.ndarray:
    return np.random.default_rng(0).permutation(np.repeat(np.arange(num_classes), per_class))


def test_a_pool_is_drawn_balanced_before_validation_and_bias():
    targets = _targets(100)
    split = draw_biased_split(targets, 10, num_validation=100, pool_size=400,
                              imbalance_ratio=2, noise_ratio=0.2, seed=1, run=0)
    # 40 per class in the pool: the lower five classes keep all 200, the upper half 200 / 2
    per_class = np.bincount(targets[split.train_indices], minlength=10)
    np.testing.assert_array_equal(per_class[:5], [40] * 5)
    assert per_class[5:].sum() == 100
    np.testing.assert_array_equal(np.bincount(targets[split.validation_indices], minlength=10),
                                  [10] * 10)
    assert not set(split.train_indices) & set(split.validation_indices)
    np.testing.assert_array_equal(split.clean_targets, targets[split.train_indices])
    assert np.all(np.diff(split.train_indices) > 0)
    assert split.is_noisy.any()
    np.testing.assert_array_equal(split.train_targets != split.clean_targets, split.is_noisy)


def test_the_pool_follows_seed_and_run():
    targets = _targets(100)

    def draw(seed, run):
        return draw_biased_split(targets, 10, 100, 400, 2, 0.2, seed, run).train_indices

    np.testing.assert_array_equal(draw(1, 0), draw(1, 0))
    assert not np.array_equal(draw(1, 0), draw(1, 1))
    assert not np.array_equal(draw(1, 0), draw(2, 0))


def test_without_a_pool_it_is_the_library_split():
    targets = _targets(30)
    pooled = draw_biased_split(targets, 10, 50, None, 3, 0.1, seed=4, run=2)
    direct = make_biased_split(targets, 10, 50, 3, 0.1, seed=4, run=2)
    for name in ("train_indices", "train_targets", "is_noisy", "validation_indices"):
        np.testing.assert_array_equal(getattr(pooled, name), getattr(direct, name))


def test_a_pool_larger_than_a_class_allows_is_explained():
    with pytest.raises(ValueError, match="has 30 training images but the split needs"):
        draw_biased_split(_targets(30), 10, 50, 400, 1, 0, seed=0, run=0)


def test_rows_map_data_set_indices_to_positions_and_noisy_labels():
    targets = _targets(20)
    split = draw_biased_split(targets, 10, 20, None, 2, 0.5, seed=0, run=0)
    rows = TrainingRows(split, len(targets), torch.device("cpu"))
    positions = torch.tensor([3, 0, len(split) - 1])
    got_rows, got_targets = rows(torch.as_tensor(split.train_indices)[positions])
    torch.testing.assert_close(got_rows, positions)
    torch.testing.assert_close(got_targets, torch.as_tensor(split.train_targets)[positions])
    assert (got_targets != torch.as_tensor(split.clean_targets)[positions]).tolist() == \
        split.is_noisy[positions.numpy()].tolist()


def test_rows_refuse_a_split_of_a_larger_data_set():
    split = draw_biased_split(_targets(20), 10, 20, None, 1, 0, seed=0, run=0)
    with pytest.raises(ValueError, match="drawn from another data set"):
        TrainingRows(split, 50, torch.device("cpu"))
