"""Biased training sets made from a clean one: class imbalance and label noise (AutoDO's setting).

:func:`make_biased_split` first holds out a stratified, class-balanced, clean validation split
(:func:`augssl.data.splits.make_splits`), then biases only what remains:

- **Imbalance ratio** ``IR`` (>= 1): every image of the lower half of the classes (``0 ..
  K//2 - 1``) is kept; the upper half (``K//2 .. K-1``; the larger half when K is odd) is pooled
  and ``round(n_upper / IR)`` of its images are drawn at random from the pool, so the counts of
  the individual upper classes vary with the seed while their total does not.
- **Noise ratio** ``NR`` in [0, 1]: ``round(NR * n_kept)`` of the kept images, drawn at random,
  get a label drawn uniformly from all K classes. As in the original AutoDO code the drawn class
  may equal the true one, so about ``NR * (K - 1) / K`` of the labels end up wrong:
  ``is_resampled`` marks the images whose label was redrawn, ``is_noisy`` those whose label
  actually changed.

Counts are rounded half up. Everything is reproducible from ``(seed, run)``: both feed one
``numpy.random.SeedSequence``, from which the validation split, the imbalance draw and the
noise draw take independent streams, so runs of one configuration differ in all three.

Rows of a biased split are positions ``0 .. N-1`` in ``train_indices``; per-image learned
parameters (AutoDO's SEP augmentation, loss weights, soft labels) are indexed by that position.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from augssl.data.splits import class_filter, make_splits

__all__ = ["BiasedSplit", "impose_imbalance", "impose_label_noise", "load_biased_split",
           "make_biased_split", "save_biased_split"]

_FORMAT_VERSION = 1
_ARRAYS = ("train_indices", "train_targets", "clean_targets", "is_resampled", "is_noisy",
           "validation_indices")
_SCALARS = ("num_classes", "imbalance_ratio", "noise_ratio", "seed", "run")


@dataclass(frozen=True, eq=False)
class BiasedSplit:
    """A biased training set and the clean validation split it was taken beside.

    ``train_indices`` (sorted int64) index the original training set; ``train_targets`` are the
    labels to train on (noisy where ``is_noisy``), ``clean_targets`` the true ones, all aligned
    with ``train_indices``. ``validation_indices`` (sorted int64) are never biased.
    """

    train_indices: np.ndarray
    train_targets: np.ndarray
    clean_targets: np.ndarray
    is_resampled: np.ndarray
    is_noisy: np.ndarray
    validation_indices: np.ndarray
    num_classes: int
    imbalance_ratio: float
    noise_ratio: float
    seed: int
    run: int

    def __len__(self) -> int:
        return len(self.train_indices)


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def _check_ratios(imbalance_ratio: float, noise_ratio: float) -> None:
    if not np.isfinite(imbalance_ratio) or imbalance_ratio < 1:
        raise ValueError(f"imbalance_ratio must be a finite number >= 1 (1 keeps every image), "
                         f"got {imbalance_ratio!r}; e.g. 10 keeps a tenth of the upper half of "
                         "the classes")
    if not 0 <= noise_ratio <= 1:
        raise ValueError(f"noise_ratio must lie in [0, 1] (the fraction of training labels to "
                         f"redraw), got {noise_ratio!r}")


def impose_imbalance(candidates: np.ndarray, targets: np.ndarray, num_classes: int,
                     imbalance_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted subset of ``candidates`` (indices into ``targets``) with the upper classes thinned.

    Keeps every candidate of classes ``0 .. K//2 - 1`` and ``round(n_upper / imbalance_ratio)``
    candidates drawn at random from the pooled classes ``K//2 .. K-1``.
    """
    _check_ratios(imbalance_ratio, 0.0)
    candidates = np.asarray(candidates, dtype=np.int64)
    if imbalance_ratio == 1:
        return np.sort(candidates)
    if num_classes < 2:
        raise ValueError(f"imbalance needs at least 2 classes (a lower and an upper half), got "
                         f"num_classes={num_classes}; use imbalance_ratio=1")
    candidate_targets = np.asarray(targets)[candidates]
    lower = candidates[class_filter(candidate_targets, range(num_classes // 2))]
    upper = candidates[class_filter(candidate_targets, range(num_classes // 2, num_classes))]
    keep_upper = _round_half_up(len(upper) / imbalance_ratio)
    if len(upper) and keep_upper == 0:
        raise ValueError(f"imbalance_ratio={imbalance_ratio} keeps no image of classes "
                         f"{num_classes // 2}..{num_classes - 1}: they have {len(upper)} "
                         f"images and {len(upper)}/{imbalance_ratio} rounds to 0. Use an "
                         f"imbalance_ratio of at most {2 * len(upper)}")
    kept_upper = rng.choice(upper, size=keep_upper, replace=False)
    return np.sort(np.concatenate([lower, kept_upper]))


def impose_label_noise(targets: np.ndarray, num_classes: int, noise_ratio: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Redraw ``round(noise_ratio * len(targets))`` labels uniformly from all classes.

    Returns ``(noisy_targets, is_resampled, is_noisy)``: a new int64 array and two boolean
    masks, the images whose label was redrawn and those whose label changed (a subset).
    """
    _check_ratios(1.0, noise_ratio)
    clean = np.asarray(targets, dtype=np.int64)
    chosen = rng.choice(len(clean), size=_round_half_up(noise_ratio * len(clean)), replace=False)
    noisy = clean.copy()
    noisy[chosen] = rng.integers(0, num_classes, size=len(chosen))
    is_resampled = np.zeros(len(clean), dtype=bool)
    is_resampled[chosen] = True
    return noisy, is_resampled, noisy != clean


def make_biased_split(targets: np.ndarray, num_classes: int, num_validation: int,
                      imbalance_ratio: float = 1.0, noise_ratio: float = 0.0, seed: int = 0,
                      run: int = 0) -> BiasedSplit:
    """Hold out a clean balanced validation split, then bias the rest (see the module doc).

    ``targets`` are the clean labels of the whole training set; ``run`` numbers repeated runs
    of one configuration (``run0``, ``run1``, ... in the original: pass 0, 1, ...).
    """
    _check_ratios(imbalance_ratio, noise_ratio)
    for name, value in (("seed", seed), ("run", run)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    validation_seq, imbalance_seq, noise_seq = np.random.SeedSequence([seed, run]).spawn(3)
    clean_split = make_splits(targets, None, num_validation,
                              int(validation_seq.generate_state(1)[0]), num_classes)
    targets = np.asarray(targets, dtype=np.int64)
    train = impose_imbalance(clean_split.labelled, targets, num_classes, imbalance_ratio,
                             np.random.default_rng(imbalance_seq))
    noisy, is_resampled, is_noisy = impose_label_noise(
        targets[train], num_classes, noise_ratio, np.random.default_rng(noise_seq))
    return BiasedSplit(train_indices=train, train_targets=noisy, clean_targets=targets[train],
                       is_resampled=is_resampled, is_noisy=is_noisy,
                       validation_indices=clean_split.validation, num_classes=int(num_classes),
                       imbalance_ratio=float(imbalance_ratio), noise_ratio=float(noise_ratio),
                       seed=int(seed), run=int(run))


def save_biased_split(split: BiasedSplit, path: str | os.PathLike) -> Path:
    """Write ``split`` to ``path`` as an uncompressed ``.npz`` (written whole, then renamed)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        np.savez(handle, format_version=_FORMAT_VERSION,
                 **{name: getattr(split, name) for name in _ARRAYS + _SCALARS})
    os.replace(partial, path)
    return path


def load_biased_split(path: str | os.PathLike) -> BiasedSplit:
    """Read a split written by :func:`save_biased_split`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            contents = {name: stored[name] for name in stored.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read a biased split from {path}: {error}. Expected an .npz "
                         "written by save_biased_split; write it again with that function"
                         ) from None
    missing = [n for n in ("format_version", *_ARRAYS, *_SCALARS) if n not in contents]
    if missing or int(contents["format_version"]) != _FORMAT_VERSION:
        raise ValueError(f"{path} is not a biased split of format {_FORMAT_VERSION} (missing "
                         f"{missing or 'nothing'}, format "
                         f"{contents.get('format_version', 'absent')}); write it again with "
                         "save_biased_split")
    scalars = {name: contents[name].item() for name in _SCALARS}
    return BiasedSplit(**{name: contents[name] for name in _ARRAYS},
                       num_classes=int(scalars["num_classes"]),
                       imbalance_ratio=float(scalars["imbalance_ratio"]),
                       noise_ratio=float(scalars["noise_ratio"]), seed=int(scalars["seed"]),
                       run=int(scalars["run"]))
