"""Biased training splits for AutoDO: exact imbalance and noise counts, reproducibility, files."""

from __future__ import annotations

import numpy as np
import pytest

from augssl.data.bias import (
    impose_imbalance,
    impose_label_noise,
    load_biased_split,
    make_biased_split,
    save_biased_split,
)


def _targets(per_class: int, num_classes: int = 10, seed: int = 0) -> np.ndarray:
    targets = np.repeat(np.arange(num_classes), per_class)
    return np.random.default_rng(seed).permutation(targets)


def test_imbalance_keeps_the_lower_half_and_a_pooled_tenth_of_the_upper_half():
    targets = _targets(120)
    split = make_biased_split(targets, 10, num_validation=200, imbalance_ratio=10, seed=3)
    per_class = np.bincount(targets[split.train_indices], minlength=10)
    np.testing.assert_array_equal(per_class[:5], [100] * 5)
    assert per_class[5:].sum() == 50
    assert len(split) == 550
    # Pooled, not per class: the upper classes' shares vary with the draw.
    assert len(set(per_class[5:].tolist())) > 1


def test_validation_is_clean_balanced_and_disjoint_from_training():
    targets = _targets(120)
    split = make_biased_split(targets, 10, num_validation=200, imbalance_ratio=10,
                              noise_ratio=0.5, seed=3)
    np.testing.assert_array_equal(np.bincount(targets[split.validation_indices], minlength=10),
                                  [20] * 10)
    assert not set(split.train_indices) & set(split.validation_indices)
    np.testing.assert_array_equal(split.clean_targets, targets[split.train_indices])


def test_noise_redraws_exactly_the_rounded_fraction_of_kept_labels():
    targets = _targets(100)
    split = make_biased_split(targets, 10, num_validation=0, imbalance_ratio=10,
                              noise_ratio=0.1, seed=5)
    assert len(split) == 550
    assert split.is_resampled.sum() == 55
    # A redrawn label may land on the true class; only changed labels count as noisy.
    assert not (split.is_noisy & ~split.is_resampled).any()
    np.testing.assert_array_equal(split.is_noisy, split.train_targets != split.clean_targets)
    assert 40 <= split.is_noisy.sum() <= 55
    np.testing.assert_array_equal(split.train_targets[~split.is_resampled],
                                  split.clean_targets[~split.is_resampled])


def test_redrawn_labels_are_uniform_over_all_classes_including_the_true_one():
    clean = np.zeros(20000, dtype=np.int64)
    noisy, resampled, is_noisy = impose_label_noise(clean, 4, 1.0, np.random.default_rng(0))
    assert resampled.all()
    np.testing.assert_allclose(np.bincount(noisy, minlength=4) / len(noisy), [0.25] * 4,
                               atol=0.015)
    assert abs(is_noisy.mean() - 0.75) < 0.015


def test_counts_round_half_up():
    targets = np.repeat(np.arange(4), 10)   # upper half: 20 images
    kept = impose_imbalance(np.arange(40), targets, 4, 8.0, np.random.default_rng(0))
    assert (targets[kept] >= 2).sum() == 3   # 20 / 8 = 2.5 -> 3
    _, resampled, _ = impose_label_noise(np.zeros(25, dtype=np.int64), 4, 0.1,
                                         np.random.default_rng(0))
    assert resampled.sum() == 3              # 2.5 -> 3


def test_same_seed_and_run_reproduce_and_other_runs_differ():
    targets = _targets(60)
    config = dict(num_validation=100, imbalance_ratio=4, noise_ratio=0.2, seed=7)
    first = make_biased_split(targets, 10, run=0, **config)
    again = make_biased_split(targets, 10, run=0, **config)
    other_run = make_biased_split(targets, 10, run=1, **config)
    for name in ("train_indices", "train_targets", "is_noisy", "validation_indices"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.validation_indices, other_run.validation_indices)
    assert not np.array_equal(first.train_indices, other_run.train_indices)


def test_no_bias_keeps_every_non_validation_image_with_its_label():
    targets = _targets(30)
    split = make_biased_split(targets, 10, num_validation=50, seed=1)
    assert len(split) == 250 and not split.is_resampled.any()
    np.testing.assert_array_equal(split.train_targets, targets[split.train_indices])


def test_save_and_load_round_trip(tmp_path):
    split = make_biased_split(_targets(40), 10, num_validation=50, imbalance_ratio=3,
                              noise_ratio=0.3, seed=2, run=4)
    loaded = load_biased_split(save_biased_split(split, tmp_path / "bias.npz"))
    for name in ("train_indices", "train_targets", "clean_targets", "is_resampled", "is_noisy",
                 "validation_indices"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(split, name))
        assert getattr(loaded, name).dtype == getattr(split, name).dtype
    assert (loaded.num_classes, loaded.imbalance_ratio, loaded.noise_ratio, loaded.seed,
            loaded.run) == (10, 3.0, 0.3, 2, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["bias.npz"]


def test_loading_a_foreign_file_says_what_to_do(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, something=np.arange(3))
    with pytest.raises(ValueError, match="save_biased_split"):
        load_biased_split(other)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="save_biased_split"):
        load_biased_split(tmp_path / "junk.npz")


@pytest.mark.parametrize("kwargs, message", [
    (dict(imbalance_ratio=0.5), "imbalance_ratio must be"),
    (dict(noise_ratio=1.5), "noise_ratio must lie"),
    (dict(imbalance_ratio=1000), "keeps no image of classes 5..9"),
    (dict(run=-1), "run must be an int"),
])
def test_bad_settings_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_biased_split(_targets(20), 10, num_validation=0, **kwargs)
