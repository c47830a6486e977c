"""Data sets stored as image files in class folders (ImageNet, user-supplied folders).

The layout is torchvision's ImageFolder one: ``<split>/<class name>/<image files>`` with classes
numbered in sorted order of their folder names. Files are read in place: nothing under the
user's folders is ever renamed, moved or written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from augssl.data.errors import DatasetNotFoundError
from augssl.data.image_sources import UNLABELLED, FolderSource

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")
UNLABELLED_FOLDER_NAMES = ("unlabeled", "unlabelled")

CUSTOM_LAYOUT = (
    "a folder holding train/<class name>/<images>, test/<class name>/<images> and optionally "
    "unlabeled/<images> (sub-folders allowed); image files ending in "
    + ", ".join(IMAGE_EXTENSIONS) + ". Class names are the train/ folder names, numbered in "
    "sorted order.")


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, hidden entries skipped), in sorted order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        found += [Path(dirpath, f) for f in filenames
                  if not _is_hidden(f) and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def list_class_folders(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not _is_hidden(e.name))


def scan_class_folders(split_dir: Path, classes: Sequence[str] | None = None
                       ) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths, targets and class names of an ImageFolder-style split.

    Without ``classes`` they are the split's own folder names and every class must hold at least
    one image. With ``classes`` (a test split scored against the training classes), every folder
    must name one of them; classes without a folder simply have no test images.
    """
    names = list_class_folders(split_dir)
    if not names:
        raise ValueError(f"{split_dir} has no class sub-folders. Expected {split_dir}/<class "
                         "name>/<images>, one folder per class.")
    own_classes = classes is None
    if own_classes:
        classes = names
    else:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise ValueError(f"{split_dir} has class folders {unknown} that the training split "
                             f"lacks (training classes: {list(classes)}). Rename them to a "
                             "training class or add them to the training split.")
    index = {name: i for i, name in enumerate(classes)}
    paths: list[Path] = []
    targets: list[int] = []
    for name in names:
        images = list_images(split_dir / name)
        if not images and own_classes:
            raise ValueError(f"class folder {split_dir / name} holds no images (looked for files "
                             f"ending in {', '.join(IMAGE_EXTENSIONS)}). Add images or remove "
                             "the folder.")
        paths += images
        targets += [index[name]] * len(images)
    return paths, np.asarray(targets, dtype=np.int64), list(classes)


@dataclass(frozen=True)
class FolderSplits:
    train: FolderSource
    test: FolderSource
    unlabeled: FolderSource | None
    classes: list[str]
    image_size: int


def _infer_image_size(path: Path) -> int:
    try:
        with Image.open(path) as image:  # reads the header only
            return min(image.size)
    except (UnidentifiedImageError, OSError) as err:
        raise OSError(f"cannot read image {path} to infer image_size: {err}. Replace the file "
                      "or pass image_size explicitly.") from None


def _unlabelled_folder(root: Path) -> Path | None:
    present = [root / n for n in UNLABELLED_FOLDER_NAMES if (root / n).is_dir()]
    if len(present) > 1:
        raise ValueError(f"{root} holds both {present[0].name}/ and {present[1].name}/; keep the "
                         "unlabelled images in one of them.")
    return present[0] if present else None


def load_custom_folder(root: Path, image_size: int | None = None) -> FolderSplits:
    """A user data set laid out as :data:`CUSTOM_LAYOUT` describes.

    Without ``image_size``, the shorter side of the first training image is used: right for
    data sets whose images share one size; pass it explicitly for photos of mixed sizes.
    """
    missing = [s for s in ("train", "test") if not (root / s).is_dir()]
    if missing:
        searched = [f"{root / s} (no such folder)" for s in missing]
        raise DatasetNotFoundError(f"folder:{root}", searched, f"arrange the images as "
                                   f"{CUSTOM_LAYOUT}")
    train_paths, train_targets, classes = scan_class_folders(root / "train")
    test_paths, test_targets, _ = scan_class_folders(root / "test", classes)
    if image_size is None:
        image_size = _infer_image_size(train_paths[0])
    unlabelled_dir = _unlabelled_folder(root)
    unlabelled_paths = list_images(unlabelled_dir) if unlabelled_dir is not None else []
    # An empty unlabelled folder means the same as none: no extra images.
    unlabeled = None
    if unlabelled_paths:
        unlabeled = FolderSource(unlabelled_paths, np.full(len(unlabelled_paths), UNLABELLED),
                                 classes, image_size)
    return FolderSplits(
        train=FolderSource(train_paths, train_targets, classes, image_size),
        test=FolderSource(test_paths, test_targets, classes, image_size),
        unlabeled=unlabeled, classes=classes, image_size=image_size)


IMAGENET_LAYOUT = (
    "download ILSVRC2012 from https://image-net.org (registration required) and arrange it as "
    "<data_path>/imagenet/train/<wnid>/*.JPEG and <data_path>/imagenet/val/<wnid>/*.JPEG. The "
    "official validation archive is flat: sort it into <wnid> folders first, e.g. with "
    "torchvision.datasets.ImageNet(root, split='val'), which uses the devkit archive.")


def imagenet_candidates(data_root: Path) -> list[Path]:
    return [data_root / "imagenet", data_root / "ImageNet", data_root / "ILSVRC2012", data_root]


def load_imagenet_folders(data_root: Path, image_size: int = 224) -> FolderSplits:
    """ImageNet from train/<wnid>/ and val/<wnid>/ folders; val is the test split."""
    searched = []
    for root in dict.fromkeys(imagenet_candidates(data_root)):
        lacking = [s for s in ("train", "val") if not (root / s).is_dir()]
        if lacking:
            searched.append(f"{root} (no {' or '.join(s + '/' for s in lacking)} folder)")
            continue
        if not list_class_folders(root / "val") and list_images(root / "val"):
            raise ValueError(f"{root / 'val'} holds images directly instead of <wnid>/ folders. "
                             + IMAGENET_LAYOUT)
        train_paths, train_targets, classes = scan_class_folders(root / "train")
        val_paths, val_targets, _ = scan_class_folders(root / "val", classes)
        return FolderSplits(
            train=FolderSource(train_paths, train_targets, classes, image_size),
            test=FolderSource(val_paths, val_targets, classes, image_size),
            unlabeled=None, classes=classes, image_size=image_size)
    raise DatasetNotFoundError("ImageNet", searched, IMAGENET_LAYOUT)
