"""Data sets restricted to some of their classes (class-mismatch experiments)."""

from __future__ import annotations

import dataclasses

import numpy as np

from augssl.config import ConfigError
from augssl.data.image_sources import ArraySource
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


def unlabelled_pool(bundle, classes: tuple[int, ...], exclude: np.ndarray) -> ArraySource:
    """Train images of ``classes`` except the indices ``exclude``, without labels (-1)."""
    _check_in_memory(bundle)
    rows = np.setdiff1d(class_filter(bundle.train.targets, classes), exclude)
    return ArraySource(bundle.train.images[rows], np.full(len(rows), -1, np.int64),
                       bundle.classes)
