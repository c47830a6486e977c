"""Image sources: indexable collections of (image, target) that hand out PIL images.

Two kinds share one interface (``len``, ``load_pil``, ``targets``, ``classes``, ``channels``,
``image_size``, ``in_memory``):

- :class:`ArraySource` holds every image in one uint8 array (the small benchmarks);
- :class:`FolderSource` reads image files from disk on demand (ImageNet, user folders).

A target of -1 marks an image without a label (STL-10's unlabelled split, a folder's
``unlabeled/`` images).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

UNLABELLED = -1


def _check_targets(targets: np.ndarray, count: int, num_classes: int, what: str) -> np.ndarray:
    targets = np.asarray(targets)
    if targets.ndim != 1 or len(targets) != count:
        raise ValueError(f"{what}: expected one target per image ({count}), got targets of shape "
                         f"{targets.shape}")
    if targets.size and not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"{what}: targets must be integers, got {targets.dtype}; convert class "
                         "labels to indices into `classes` first")
    targets = targets.astype(np.int64, copy=True)
    bad = (targets < UNLABELLED) | (targets >= num_classes)
    if bad.any():
        raise ValueError(f"{what}: target {targets[bad][0]} is outside 0..{num_classes - 1} "
                         f"(or {UNLABELLED} for unlabelled images); there are {num_classes} "
                         "classes")
    return targets


class _LabelledImages:
    """What every image source shares: int64 targets (-1: unlabelled) and class names."""

    _targets: np.ndarray
    _classes: tuple[str, ...]

    @property
    def targets(self) -> np.ndarray:
        return self._targets

    @property
    def classes(self) -> list[str]:
        return list(self._classes)


class ArraySource(_LabelledImages):
    """Images held in memory as an N x H x W x C uint8 array (C = 1 or 3, H = W)."""

    in_memory = True

    def __init__(self, images: np.ndarray, targets: np.ndarray, classes: Sequence[str]) -> None:
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(
                "images must be a uint8 numpy array of shape N x H x W x C, got "
                f"{getattr(images, 'shape', type(images).__name__)} of "
                f"{getattr(images, 'dtype', '?')}; add a channel axis to greyscale images "
                "(images[..., None]) and convert floats with (x * 255).round().astype(np.uint8)")
        if images.shape[3] not in (1, 3):
            raise ValueError(f"images must have 1 (greyscale) or 3 (RGB) channels in the last "
                             f"axis, got shape {images.shape}")
        if images.shape[1] != images.shape[2]:
            raise ValueError(f"images must be square (H == W) so that one image_size describes "
                             f"them, got {images.shape[1]} x {images.shape[2]}; crop or pad them")
        self._classes = tuple(str(c) for c in classes)
        self._targets = _check_targets(targets, len(images), len(self._classes), "ArraySource")
        self._images = images

    def __len__(self) -> int:
        return len(self._images)

    def load_pil(self, index: int) -> Image.Image:
        """Image ``index`` as a PIL image in mode 'L' (greyscale) or 'RGB'."""
        # A memory-mapped or transposed array yields strided views; PIL needs contiguous pixels.
        pixels = np.ascontiguousarray(self._images[index])
        return Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)

    @property
    def images(self) -> np.ndarray:
        return self._images

    @property
    def channels(self) -> int:
        return self._images.shape[3]

    @property
    def image_size(self) -> int:
        return self._images.shape[1]


class FolderSource(_LabelledImages):
    """RGB image files on disk, read on demand.

    With ``image_size`` set, every image is resized so that its shorter side is ``image_size``
    and centre-cropped to ``image_size`` x ``image_size``, so that images of mixed sizes can be
    batched. Files are only ever opened for reading.
    """

    in_memory = False
    channels = 3

    def __init__(self, paths: Sequence[str | os.PathLike], targets: np.ndarray,
                 classes: Sequence[str], image_size: int | None = None) -> None:
        if image_size is not None and (isinstance(image_size, bool) or image_size < 1):
            raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
        self._paths = tuple(os.fspath(p) for p in paths)
        self._classes = tuple(str(c) for c in classes)
        self._targets = _check_targets(targets, len(self._paths), len(self._classes),
                                       "FolderSource")
        self._image_size = image_size

    def __len__(self) -> int:
        return len(self._paths)

    def load_pil(self, index: int) -> Image.Image:
        """Image ``index`` as an RGB PIL image, resized and cropped when ``image_size`` is set."""
        path = self._paths[index]
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise OSError(f"cannot read image {path}: {err}. Replace or remove the file, or move "
                          "it out of the data set folder.") from None
        if self._image_size is None:
            return image
        return _resize_and_centre_crop(image, self._image_size)

    @property
    def paths(self) -> tuple[str, ...]:
        return self._paths

    @property
    def image_size(self) -> int | None:
        return self._image_size


def _resize_and_centre_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if (width, height) == (size, size):
        return image
    scale = size / min(width, height)
    new_size = (round(width * scale), round(height * scale))
    image = image.resize(new_size, Image.Resampling.BICUBIC)
    left = (new_size[0] - size) // 2
    top = (new_size[1] - size) // 2
    return image.crop((left, top, left + size, top + size))
