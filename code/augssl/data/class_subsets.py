"""Data sets restricted to some of their classes (class-mismatch experiments)."""

from __future__ import annotations

import dataclasses

import numpy as np

from augssl.config import ConfigError
from augssl.data.image_sources import UNLABELLED, ArraySource, FolderSource
from augssl.data.splits import class_filter, remap_targets


def _check_in_memory(bundle) -> None:
    if not bundle.train.in_memory:
        raise ConfigError(f"class filters need a data set held in memory; {bundle.name} is read "
                          "from image files. Give a folder data set with only the wanted classes.")


def subset_bundle(bundle, keep: tuple[int, ...]):
    """``bundle`` with train and test holding only the classes ``keep``, renumbered 0..len-1."""
    _check_in_memory(bundle)
    unknown = [c for c in keep if not 0 <= c < len(bundle.classes)]
    if unknown:
        raise ConfigError(f"class indices {unknown} do not exist in {bundle.name}: expected "
                          f"0..{len(bundle.classes) - 1} ({', '.join(bundle.classes)}).")

    def restrict(source: ArraySource) -> ArraySource:
        rows = class_filter(source.targets, keep)
        return ArraySource(source.images[rows], remap_targets(source.targets[rows], keep),
                           [bundle.classes[c] for c in keep])

    return dataclasses.replace(bundle, train=restrict(bundle.train), test=restrict(bundle.test),
                               classes=tuple(bundle.classes[c] for c in keep))


def unlabelled_pool(bundle, classes: tuple[int, ...],
                    exclude: np.ndarray) -> ArraySource | FolderSource:
    """Train images of ``classes`` except the indices ``exclude``, then the data set's own
    unlabelled images (a folder's ``unlabeled/``, STL-10's unlabelled split), all with target -1.

    In-memory data sets give an ArraySource; folder data sets a FolderSource of the same files,
    read in place.
    """
    rows = np.setdiff1d(class_filter(bundle.train.targets, classes), exclude)
    extra = bundle.unlabeled
    if bundle.train.in_memory:
        parts = [bundle.train.images[rows]] + ([extra.images] if extra is not None else [])
        images = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return ArraySource(images, np.full(len(images), UNLABELLED, np.int64), bundle.classes)
    paths = [bundle.train.paths[r] for r in rows] + (list(extra.paths) if extra else [])
    return FolderSource(paths, np.full(len(paths), UNLABELLED, np.int64), bundle.classes,
                        image_size=bundle.train.image_size)
