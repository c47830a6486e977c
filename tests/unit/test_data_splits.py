"""Stratified labelled / unlabelled / validation splits and class filtering."""

from __future__ import annotations

import numpy as np
import pytest

from augssl.data.splits import balanced_quotas, class_filter, make_splits, remap_targets


def _targets(per_class: list[int], seed: int = 0) -> np.ndarray:
    """Targets with per_class[c] images of class c, shuffled so order carries no information."""
    targets = np.repeat(np.arange(len(per_class)), per_class)
    return np.random.default_rng(seed).permutation(targets)


def test_counts_are_stratified_per_class():
    targets = _targets([100] * 10)
    splits = make_splits(targets, num_labelled=40, num_validation=50, seed=1, num_classes=10)
    np.testing.assert_array_equal(np.bincount(targets[splits.labelled], minlength=10), [4] * 10)
    np.testing.assert_array_equal(np.bincount(targets[splits.validation], minlength=10), [5] * 10)
    assert splits.labelled.dtype == np.int64 and splits.validation.dtype == np.int64


def test_remainders_go_to_the_first_classes_whatever_the_seed():
    targets = _targets([30] * 4)
    for seed in range(3):
        splits = make_splits(targets, num_labelled=10, num_validation=6, seed=seed, num_classes=4)
        np.testing.assert_array_equal(np.bincount(targets[splits.labelled], minlength=4),
                                      [3, 3, 2, 2])
        np.testing.assert_array_equal(np.bincount(targets[splits.validation], minlength=4),
                                      [2, 2, 1, 1])
    np.testing.assert_array_equal(balanced_quotas(3, 5), [1, 1, 1, 0, 0])


def test_labelled_and_validation_are_disjoint_and_unlabelled_excludes_validation():
    targets = _targets([50, 60, 70])
    splits = make_splits(targets, num_labelled=9, num_validation=15, seed=3, num_classes=3)
    assert not set(splits.labelled) & set(splits.validation)
    assert not set(splits.unlabelled) & set(splits.validation)
    # By default the unlabelled pool is the whole non-validation train set.
    expected = sorted(set(range(len(targets))) - set(splits.validation))
    np.testing.assert_array_equal(splits.unlabelled, expected)
    assert set(splits.labelled) <= set(splits.unlabelled)


def test_unlabelled_pool_can_exclude_the_labelled_images():
    targets = _targets([20] * 5)
    splits = make_splits(targets, 10, 10, seed=4, num_classes=5,
                         unlabelled_includes_labelled=False)
    assert not set(splits.unlabelled) & set(splits.labelled)
    assert len(splits.unlabelled) + len(splits.labelled) + len(splits.validation) == len(targets)


@pytest.mark.parametrize("num_labelled", [None, -1])
def test_all_non_validation_images_labelled(num_labelled):
    targets = _targets([10, 12])
    splits = make_splits(targets, num_labelled, num_validation=4, seed=5, num_classes=2)
    assert len(splits.labelled) == 18 and not set(splits.labelled) & set(splits.validation)
    np.testing.assert_array_equal(splits.unlabelled, splits.labelled)
    disjoint = make_splits(targets, num_labelled, num_validation=4, seed=5, num_classes=2,
                           unlabelled_includes_labelled=False)
    np.testing.assert_array_equal(disjoint.labelled, splits.labelled)
    assert len(disjoint.unlabelled) == 0


def test_same_seed_same_split_different_seed_different_split():
    targets = _targets([200] * 10)
    a = make_splits(targets, 100, 500, seed=7, num_classes=10)
    b = make_splits(targets, 100, 500, seed=7, num_classes=10)
    c = make_splits(targets, 100, 500, seed=8, num_classes=10)
    for name in ("labelled", "unlabelled", "validation"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.labelled, c.labelled)
    assert not np.array_equal(a.validation, c.validation)


def test_too_few_images_names_the_class_and_counts():
    targets = _targets([10, 10, 3])
    with pytest.raises(ValueError, match=r"class 2 \('bird'\) has 3 training images but the "
                                         r"split needs 4 \(2 validation \+ 2 labelled\)"):
        make_splits(targets, num_labelled=6, num_validation=6, seed=0, num_classes=3,
                    class_names=["cat", "dog", "bird"])


@pytest.mark.parametrize("kwargs, message", [
    ({"num_labelled": 0}, "positive"),
    ({"num_validation": -1}, "num_validation"),
    ({"num_classes": 2}, "outside 0..1"),
])
def test_invalid_arguments_are_explained(kwargs, message):
    arguments = {"targets": _targets([5, 5, 5]), "num_labelled": 3, "num_validation": 3,
                 "seed": 0, "num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_splits(**arguments)


def test_class_filter_then_remap_gives_contiguous_labels():
    targets = np.array([0, 5, 3, 5, 1, 3, -1])
    kept = class_filter(targets, [5, 3])
    np.testing.assert_array_equal(kept, [1, 2, 3, 5])
    np.testing.assert_array_equal(remap_targets(targets[kept], [5, 3]), [0, 1, 0, 1])
    np.testing.assert_array_equal(remap_targets(np.array([3, -1]), [5, 3]), [1, -1])


def test_remap_refuses_classes_outside_keep():
    with pytest.raises(ValueError, match=r"\[0\].*class_filter"):
        remap_targets(np.array([0, 3]), [3])
    with pytest.raises(ValueError, match="more than once"):
        class_filter(np.array([1]), [1, 1])


class _TrainSet:
    def __init__(self, targets: np.ndarray):
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)


def _session_splits(params: str):
    from types import SimpleNamespace

    from augssl.config import parse_params
    from augssl.engine.config import TrainingConfig
    from augssl.engine.session import split_training_set

    bundle = SimpleNamespace(train=_TrainSet(_targets([60] * 10)),
                             classes=[str(c) for c in range(10)])
    config = parse_params(f"num_labelled_samples=20;num_validation_samples=50;{params}",
                          TrainingConfig)
    return split_training_set(config, bundle)


def test_the_run_seed_draws_the_labelled_images_by_default():
    assert not np.array_equal(_session_splits("seed=0").labelled,
                              _session_splits("seed=1").labelled)


def test_split_seed_keeps_the_labelled_images_whatever_the_run_seed():
    """Seeds then vary the weights, the augmentation and the batch order on the same images."""
    fixed = [_session_splits(f"seed={seed};split_seed=7") for seed in (0, 1, 2)]
    for splits in fixed[1:]:
        np.testing.assert_array_equal(splits.labelled, fixed[0].labelled)
        np.testing.assert_array_equal(splits.validation, fixed[0].validation)
    np.testing.assert_array_equal(fixed[0].labelled, _session_splits("seed=7").labelled)
