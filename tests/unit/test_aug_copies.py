import dataclasses

import numpy as np
import pytest
import torch

from augssl.augment import AugmentSpec
from augssl.config import ConfigError
from augssl.data import aug_copies
from augssl.data.aug_copies import augmented_copies, sample_views

SPEC = AugmentSpec(image_size=8, channels=1, cutout_size=3, fill=(73,))


def _images(n=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)


def test_copies_are_deterministic_cached_and_reused(tmp_path, monkeypatch):
    images = _images()
    first = augmented_copies(images, "cutout", SPEC, 3, seed=1, cache_dir=tmp_path,
                             device=torch.device("cpu"))
    assert first.shape == (3, 20, 8, 8, 1) and first.dtype == np.uint8
    assert not np.array_equal(first[0], first[1])  # each copy is its own augmentation
    assert not np.array_equal(first[0], images)
    written = list(tmp_path.iterdir())
    assert len(written) == 1 and not any(".partial" in p.name for p in written)

    def fail(*args, **kwargs):
        raise AssertionError("the cached copies should have been reused")

    monkeypatch.setattr(aug_copies, "_write", fail)
    again = augmented_copies(images, "cutout", SPEC, 3, seed=1, cache_dir=tmp_path,
                             device=torch.device("cpu"))
    np.testing.assert_array_equal(first, again)


def test_other_settings_or_images_make_another_entry(tmp_path):
    cpu = torch.device("cpu")
    base = augmented_copies(_images(), "cutout", SPEC, 2, 1, tmp_path, cpu)
    other_seed = augmented_copies(_images(), "cutout", SPEC, 2, 2, tmp_path, cpu)
    other_images = augmented_copies(_images(seed=5), "cutout", SPEC, 2, 1, tmp_path, cpu)
    other_fill = augmented_copies(_images(), "cutout", dataclasses.replace(SPEC, fill=(200,)), 2,
                                  1, tmp_path, cpu)
    assert len(list(tmp_path.iterdir())) == 4
    assert not np.array_equal(base, other_seed) and not np.array_equal(base, other_images)
    assert not np.array_equal(base, other_fill)
    fresh = augmented_copies(_images(), "cutout", SPEC, 2, 1, tmp_path / "elsewhere", cpu)
    np.testing.assert_array_equal(base, fresh)  # same key, same content, wherever made


def test_an_interrupted_write_leaves_no_entry(tmp_path, monkeypatch):
    def broken(policy, spec):
        def augment(images, generator):
            raise KeyboardInterrupt
        return augment

    monkeypatch.setattr(aug_copies, "build_batch_transform", broken)
    with pytest.raises(KeyboardInterrupt):
        augmented_copies(_images(), "cutout", SPEC, 2, 1, tmp_path, torch.device("cpu"))
    assert list(tmp_path.iterdir()) == []


def test_short_disk_is_refused_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(aug_copies.shutil, "disk_usage",
                        lambda path: type("U", (), {"free": 100})())
    with pytest.raises(ConfigError, match=r"need .* GiB .* only .* free: lower aug_copy"):
        augmented_copies(_images(), "cutout", SPEC, 2, 1, tmp_path, torch.device("cpu"))
    assert list(tmp_path.iterdir()) == []


def test_sample_views_takes_distinct_copies_per_image():
    copies = np.arange(5)[:, None, None, None, None] * np.ones((5, 6, 1, 1, 1), np.uint8)
    views = sample_views(copies, np.arange(6), 2, np.random.default_rng(0))
    assert views.shape == (2, 6, 1, 1, 1)
    assert (views[0] != views[1]).all()
    with pytest.raises(ConfigError, match="at least 6 augmented copies"):
        sample_views(copies, np.arange(6), 6, np.random.default_rng(0))
