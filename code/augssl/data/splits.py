"""Stratified labelled / unlabelled / validation splits of a training set, and class filtering.

Validation images are held out of the training set first, then the labelled subset is drawn from
what remains, both stratified by class. Quotas are balanced: ``total // K`` per class, and the
``total % K`` left over go one each to the lowest-numbered classes, so the counts per class never
depend on the seed. Which images fill each quota does depend on it, through
``numpy.random.Generator(seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Splits:
    """Sorted int64 indices into the training set.

    ``labelled`` and ``validation`` are disjoint; ``unlabelled`` never holds validation images.
    """

    labelled: np.ndarray
    unlabelled: np.ndarray
    validation: np.ndarray


def _sorted_indices(parts: Sequence[np.ndarray]) -> np.ndarray:
    flat = np.concatenate(parts) if len(parts) else np.empty(0)
    return np.sort(flat.astype(np.int64))


def balanced_quotas(total: int, num_classes: int) -> np.ndarray:
    """``total`` split over classes as evenly as possible; extras go to the first classes."""
    quotas = np.full(num_classes, total // num_classes, dtype=np.int64)
    quotas[: total % num_classes] += 1
    return quotas


def _class_label(c: int, class_names: Sequence[str] | None) -> str:
    return f"class {c} ('{class_names[c]}')" if class_names is not None else f"class {c}"


def _check_targets(targets: np.ndarray, num_classes: int) -> np.ndarray:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    targets = np.asarray(targets)
    if targets.ndim != 1 or (targets.size and not np.issubdtype(targets.dtype, np.integer)):
        raise ValueError(f"targets must be a 1-D integer array, got shape {targets.shape} of "
                         f"{targets.dtype}")
    outside = (targets < 0) | (targets >= num_classes)
    if outside.any():
        raise ValueError(f"target {targets[outside][0]} is outside 0..{num_classes - 1}: splits "
                         "need labelled training images only; drop unlabelled (-1) images or "
                         "fix num_classes")
    return targets.astype(np.int64, copy=False)


def make_splits(targets: np.ndarray, num_labelled: int | None, num_validation: int, seed: int,
                num_classes: int, *, unlabelled_includes_labelled: bool = True,
                class_names: Sequence[str] | None = None) -> Splits:
    """Split a training set into labelled, unlabelled and validation indices.

    ``num_labelled`` None or -1 labels every non-validation image. With
    ``unlabelled_includes_labelled`` (the default, as in UDA, MixMatch and FixMatch) the
    unlabelled pool is every non-validation image, the labelled ones included with their labels
    unused; otherwise it excludes the labelled images. ``class_names`` only improves messages.

    Raises ValueError naming the class, the count needed and the count available when a class
    has too few images for its quotas.
    """
    targets = _check_targets(targets, num_classes)
    if num_validation < 0:
        raise ValueError(f"num_validation must be >= 0, got {num_validation}")
    label_all = num_labelled is None or num_labelled == -1
    if not label_all and num_labelled < 1:
        raise ValueError(f"num_labelled must be a positive count, or -1/None to label every "
                         f"non-validation image; got {num_labelled}")
    validation_quotas = balanced_quotas(num_validation, num_classes)
    labelled_quotas = (np.zeros(num_classes, dtype=np.int64) if label_all
                       else balanced_quotas(num_labelled, num_classes))

    rng = np.random.default_rng(seed)
    by_class = np.split(np.argsort(targets, kind="stable"),
                        np.cumsum(np.bincount(targets, minlength=num_classes))[:-1])
    validation, labelled, rest = [], [], []
    for c in range(num_classes):
        members = rng.permutation(by_class[c])
        needed = int(validation_quotas[c] + labelled_quotas[c])
        if needed > len(members):
            parts = f"{validation_quotas[c]} validation"
            if not label_all:
                parts += f" + {labelled_quotas[c]} labelled"
            raise ValueError(
                f"{_class_label(c, class_names)} has {len(members)} training images but the "
                f"split needs {needed} ({parts}). Lower num_validation_samples or "
                "num_labelled_samples, or add images of that class.")
        n_val = int(validation_quotas[c])
        validation.append(members[:n_val])
        labelled.append(members[n_val:needed])
        rest.append(members[needed:])

    non_validation = _sorted_indices([*labelled, *rest])
    labelled_idx = non_validation if label_all else _sorted_indices(labelled)
    if unlabelled_includes_labelled:
        unlabelled_idx = non_validation.copy()
    else:
        unlabelled_idx = _sorted_indices([] if label_all else rest)
    return Splits(labelled=labelled_idx, unlabelled=unlabelled_idx,
                  validation=_sorted_indices(validation))


def class_filter(targets: np.ndarray, keep: Sequence[int]) -> np.ndarray:
    """Sorted int64 indices of the targets that are one of the classes in ``keep``."""
    keep = _check_keep(keep)
    return np.flatnonzero(np.isin(np.asarray(targets), keep)).astype(np.int64)


def remap_targets(targets: np.ndarray, keep: Sequence[int]) -> np.ndarray:
    """Targets renumbered so that ``keep[i]`` becomes ``i``; -1 (unlabelled) stays -1.

    Apply it to targets already filtered with :func:`class_filter`: any other class is an error.
    """
    keep = _check_keep(keep)
    targets = np.asarray(targets, dtype=np.int64)
    order = np.argsort(keep)
    sorted_keep = keep[order]
    labelled = targets != -1
    positions = np.searchsorted(sorted_keep, targets[labelled]).clip(max=len(keep) - 1)
    known = sorted_keep[positions] == targets[labelled]
    if not known.all():
        stray = np.unique(targets[labelled][~known]).tolist()
        raise ValueError(f"targets hold classes {stray} that are not in keep={keep.tolist()}; "
                         "select the images with class_filter(targets, keep) first")
    remapped = np.full_like(targets, -1)
    remapped[labelled] = order[positions]
    return remapped


def _check_keep(keep: Sequence[int]) -> np.ndarray:
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    if keep.size == 0:
        raise ValueError("keep must list at least one class index")
    if len(np.unique(keep)) != len(keep):
        raise ValueError(f"keep lists a class more than once: {keep.tolist()}")
    if keep.min() < 0:
        raise ValueError(f"keep must hold class indices >= 0, got {keep.tolist()}")
    return keep
