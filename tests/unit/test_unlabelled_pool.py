"""RealMix's unlabelled pool: the chosen classes' training images, without the held-out ones,
plus the data set's own unlabelled images (a folder's unlabeled/, STL-10's unlabelled split)."""

import dataclasses

import numpy as np
from PIL import Image

from augssl.data.class_subsets import unlabelled_pool
from augssl.data.image_sources import ArraySource
from augssl.data.sources import DatasetBundle, load_dataset


def _png(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def test_a_folder_data_set_pools_its_training_images_and_its_unlabeled_folder(tmp_path):
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            for i in range(3):
                _png(tmp_path / split / name / f"{i}.png", (i, 0, 0))
    _png(tmp_path / "unlabeled" / "a.png", (9, 9, 9))
    _png(tmp_path / "unlabeled" / "more" / "b.png", (8, 8, 8))
    bundle = load_dataset(f"folder:{tmp_path}")
    dog_rows = np.flatnonzero(bundle.train.targets == 1)

    pool = unlabelled_pool(bundle, (1,), exclude=dog_rows[:1])

    expected = [bundle.train.paths[r] for r in dog_rows[1:]] + list(bundle.unlabeled.paths)
    assert list(pool.paths) == expected
    assert set(pool.targets) == {-1}
    assert pool.load_pil(len(pool) - 1).size == (8, 8)


def test_an_in_memory_data_set_appends_its_unlabelled_split():
    images = np.arange(6 * 4 * 4 * 3, dtype=np.uint8).reshape(6, 4, 4, 3)
    train = ArraySource(images, np.array([0, 1, 0, 1, 0, 1]), ["a", "b"])
    extra = ArraySource(np.full((2, 4, 4, 3), 7, np.uint8), np.array([-1, -1]), ["a", "b"])
    bundle = DatasetBundle("toy", train, train, ("a", "b"), channels=3, image_size=4,
                           mean=(0.5,) * 3, std=(0.25,) * 3, flip=True, unlabeled=extra)
    pool = unlabelled_pool(bundle, (0,), exclude=np.array([2]))
    np.testing.assert_array_equal(pool.images, np.concatenate([images[[0, 4]], extra.images]))
    without_extra = unlabelled_pool(dataclasses.replace(bundle, unlabeled=None), (0,),
                                    exclude=np.array([2]))
    np.testing.assert_array_equal(without_extra.images, images[[0, 4]])
