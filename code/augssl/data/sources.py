"""Data sets by name: ``load_dataset`` returns a :class:`DatasetBundle` of image sources.

The image source classes (:class:`ArraySource`, :class:`FolderSource`) live in
:mod:`augssl.data.image_sources` and are re-exported here, so that this module is the one import
the training code needs.

Files are looked for in the standard layouts torchvision writes (see input/README.md) and read
with this package's own readers, which check shapes but not checksums, so that a present,
well-formed file set always loads without a download. torchvision is used only to download
missing data, and any failure there is reported as a :class:`DatasetNotFoundError`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from augssl.data import folders, formats
from augssl.data.errors import DatasetNotFoundError
from augssl.data.image_sources import UNLABELLED, ArraySource, FolderSource
from augssl.data.locate import find_file_set, resolve_data_root

__all__ = ["ArraySource", "DATASET_NAMES", "DatasetBundle", "DatasetNotFoundError",
           "FolderSource", "Source", "canonical_name", "load_dataset"]

Source = ArraySource | FolderSource

# Where Debian's dataset-fashion-mnist package installs the four gzipped IDX files.
FASHION_MNIST_SYSTEM_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)

DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class DatasetBundle:
    """A data set's splits and the facts the training pipeline needs about it.

    ``mean``/``std`` are per-channel statistics of the training images in [0, 1] units; ``flip``
    says whether a horizontal flip keeps an image in its class (not so for digits);
    ``unlabeled`` holds extra images without labels (targets -1) when the data set has them.
    """

    name: str
    train: Source
    test: Source
    classes: tuple[str, ...]
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool
    unlabeled: Source | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class _Stats:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool


# Per-channel mean and standard deviation over all pixels of the training split.
_CIFAR10 = _Stats((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True)
_CIFAR100 = _Stats((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True)
_SVHN = _Stats((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), False)
_MNIST = _Stats((0.1307,), (0.3081,), False)
_FASHION_MNIST = _Stats((0.2860,), (0.3530,), True)
_STL10 = _Stats((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713), True)
# Custom folders use ImageNet's statistics: a neutral choice for natural photos.
_IMAGENET = _Stats((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), True)


def _bundle(name: str, stats: _Stats, train: Source, test: Source, classes: Sequence[str],
            unlabeled: Source | None = None) -> DatasetBundle:
    return DatasetBundle(name=name, train=train, test=test, classes=tuple(classes),
                         channels=train.channels, image_size=train.image_size, mean=stats.mean,
                         std=stats.std, flip=stats.flip, unlabeled=unlabeled)


def _find_or_download(name: str, candidates: Sequence[Path],
                      required: Mapping[str, Sequence[str]], download: bool,
                      fetch: Callable[[], object], how_to_get: str) -> dict[str, Path]:
    search = find_file_set(candidates, required)
    if search.files is not None:
        return search.files
    if not download:
        raise DatasetNotFoundError(name, search.searched,
                                   f"{how_to_get} (download=False, so nothing was downloaded)")
    try:
        fetch()
    except Exception as err:  # noqa: BLE001 - any download failure means the data is missing
        raise DatasetNotFoundError(name, search.searched, how_to_get,
                                   download_error=f"{type(err).__name__}: {err}") from None
    search = find_file_set(candidates, required)
    if search.files is None:
        raise DatasetNotFoundError(name, search.searched, how_to_get,
                                   download_error="it finished, but the files are in none of the "
                                   "places searched")
    return search.files


def _online_hint(root: Path, layout: str) -> str:
    return (f"call load_dataset with download=True on a machine with internet access "
            f"(torchvision saves it under {root}), or place the files yourself: {layout}")


def _load_cifar(name: str, root: Path, download: bool, stats: _Stats, folder: str,
                train_files: Sequence[str], test_file: str, meta_file: str, meta_key: str,
                label_key: str, torchvision_class: str) -> DatasetBundle:
    names = [*train_files, test_file, meta_file]
    layout = f"{root / folder}/ holding {', '.join(names)} (the python-version archive)"
    files = _find_or_download(name, [root / folder, root], {n: (n,) for n in names}, download,
                              _torchvision_fetch(torchvision_class, root, train=False),
                              _online_hint(root, layout))
    classes = formats.read_cifar_class_names(files[meta_file], meta_key)
    train = ArraySource(*formats.read_cifar_batches([files[n] for n in train_files], label_key),
                        classes)
    test = ArraySource(*formats.read_cifar_batches([files[test_file]], label_key), classes)
    return _bundle(name, stats, train, test, classes)


def _torchvision_fetch(class_name: str, root: Path, **kwargs) -> Callable[[], object]:
    def fetch() -> object:
        # Imported on demand: reading local files never needs torchvision.
        import torchvision.datasets

        return getattr(torchvision.datasets, class_name)(str(root), download=True, **kwargs)
    return fetch


def _load_cifar10(root: Path, download: bool) -> DatasetBundle:
    return _load_cifar("CIFAR10", root, download, _CIFAR10, "cifar-10-batches-py",
                       [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta",
                       "label_names", "labels", "CIFAR10")


def _load_cifar100(root: Path, download: bool) -> DatasetBundle:
    return _load_cifar("CIFAR100", root, download, _CIFAR100, "cifar-100-python", ["train"],
                       "test", "meta", "fine_label_names", "fine_labels", "CIFAR100")


def _load_svhn(root: Path, download: bool, with_extra: bool) -> DatasetBundle:
    splits = ("train", "test", "extra") if with_extra else ("train", "test")
    files = {s: f"{s}_32x32.mat" for s in splits}
    svhn_root = root / "SVHN"

    def fetch() -> None:
        for split in splits:
            _torchvision_fetch("SVHN", svhn_root, split=split)()

    name = "SVHN_extra" if with_extra else "SVHN"
    layout = f"{svhn_root}/ holding {', '.join(files.values())} (the cropped-digits format)"
    found = _find_or_download(name, [svhn_root, root / "svhn", root],
                              {s: (f,) for s, f in files.items()}, download, fetch,
                              _online_hint(svhn_root, layout))
    train_images, train_targets = formats.read_svhn_mat(found["train"])
    if with_extra:
        extra_images, extra_targets = formats.read_svhn_mat(found["extra"])
        train_images = np.concatenate([train_images, extra_images])
        train_targets = np.concatenate([train_targets, extra_targets])
    train = ArraySource(train_images, train_targets, DIGIT_CLASSES)
    test = ArraySource(*formats.read_svhn_mat(found["test"]), DIGIT_CLASSES)
    return _bundle(name, _SVHN, train, test, DIGIT_CLASSES)


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")


def _idx_bundle(name: str, stats: _Stats, files: Mapping[str, Path],
                classes: Sequence[str]) -> DatasetBundle:
    train_images, test_images, train_labels, test_labels = (
        files[n] for n in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte",
                           "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"))
    train = ArraySource(*formats.read_idx_pair(train_images, train_labels), classes)
    test = ArraySource(*formats.read_idx_pair(test_images, test_labels), classes)
    return _bundle(name, stats, train, test, classes)


def _idx_required() -> dict[str, tuple[str, str]]:
    # torchvision keeps both the .gz and the extracted file; the plain one reads faster.
    return {n: (n, n + ".gz") for n in _IDX_FILES}


def _idx_layout(folder: Path) -> str:
    return f"{folder}/ holding {', '.join(_IDX_FILES)} (each plain or .gz)"


def _load_mnist(root: Path, download: bool) -> DatasetBundle:
    raw = root / "MNIST" / "raw"
    files = _find_or_download("MNIST", [raw, root / "MNIST", root], _idx_required(), download,
                              _torchvision_fetch("MNIST", root, train=False),
                              _online_hint(raw, _idx_layout(raw)))
    return _idx_bundle("MNIST", _MNIST, files, DIGIT_CLASSES)


def _load_fashion_mnist(root: Path, download: bool) -> DatasetBundle:
    raw = root / "FashionMNIST" / "raw"
    how_to_get = ("on Debian/Ubuntu install the package dataset-fashion-mnist (apt-get install "
                  f"dataset-fashion-mnist), which puts the files in "
                  f"{FASHION_MNIST_SYSTEM_DIRS[0]}; or {_online_hint(raw, _idx_layout(raw))}")
    files = _find_or_download("FashionMNIST",
                              [raw, root / "FashionMNIST", root, *FASHION_MNIST_SYSTEM_DIRS],
                              _idx_required(), download,
                              _torchvision_fetch("FashionMNIST", root, train=False), how_to_get)
    return _idx_bundle("FashionMNIST", _FASHION_MNIST, files, FASHION_MNIST_CLASSES)


def _load_stl10(root: Path, download: bool) -> DatasetBundle:
    folder = root / "stl10_binary"
    names = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin",
             "class_names.txt")
    layout = f"{folder}/ holding {', '.join(names)}"
    files = _find_or_download("STL10", [folder, root], {n: (n,) for n in names}, download,
                              _torchvision_fetch("STL10", root, split="test"),
                              _online_hint(root, layout))
    classes = formats.read_class_names_txt(files["class_names.txt"])

    def labelled(split: str) -> ArraySource:
        images = formats.read_stl10_images(files[f"{split}_X.bin"])
        return ArraySource(images, formats.read_stl10_labels(files[f"{split}_y.bin"],
                                                             len(images)), classes)

    unlabelled_images = formats.read_stl10_images(files["unlabeled_X.bin"])
    unlabeled = ArraySource(unlabelled_images, np.full(len(unlabelled_images), UNLABELLED),
                            classes)
    return _bundle("STL10", _STL10, labelled("train"), labelled("test"), classes, unlabeled)


def _load_imagenet(root: Path, image_size: int | None) -> DatasetBundle:
    found = folders.load_imagenet_folders(root, image_size or 224)
    return _bundle("ImageNet", _IMAGENET, found.train, found.test, found.classes)


def _load_custom(folder: Path, image_size: int | None) -> DatasetBundle:
    found = folders.load_custom_folder(folder, image_size)
    return _bundle("custom", _IMAGENET, found.train, found.test, found.classes, found.unlabeled)


# Loader and native image size of each data set held in memory.
_ARRAY_LOADERS: dict[str, tuple[Callable[[Path, bool], DatasetBundle], int]] = {
    "CIFAR10": (_load_cifar10, 32),
    "CIFAR100": (_load_cifar100, 32),
    "SVHN": (lambda root, download: _load_svhn(root, download, with_extra=False), 32),
    "SVHN_extra": (lambda root, download: _load_svhn(root, download, with_extra=True), 32),
    "MNIST": (_load_mnist, 28),
    "FashionMNIST": (_load_fashion_mnist, 28),
    "STL10": (_load_stl10, 96),
}
_FOLDER_NAMES = ("ImageNet", "custom")
FOLDER_PREFIX = "folder:"

DATASET_NAMES: tuple[str, ...] = (*_ARRAY_LOADERS, *_FOLDER_NAMES)


def _normalise(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def canonical_name(name: str) -> str:
    """The supported spelling of ``name`` (case, '-', '_' and spaces are ignored).

    Raises ValueError naming the closest supported name when there is none.
    """
    by_key = {_normalise(n): n for n in DATASET_NAMES}
    key = _normalise(name)
    if key in by_key:
        return by_key[key]
    close = difflib.get_close_matches(key, list(by_key), n=1, cutoff=0.4)
    hint = f" Did you mean '{by_key[close[0]]}'?" if close else ""
    raise ValueError(f"unknown data set '{name}'.{hint} Supported: {', '.join(DATASET_NAMES)}, "
                     f"or '{FOLDER_PREFIX}<path>' for your own image folders.")


def load_dataset(name: str, data_path: str | os.PathLike | None = None, download: bool = True,
                 *, image_size: int | None = None) -> DatasetBundle:
    """Load a data set by name.

    ``name`` is one of :data:`DATASET_NAMES` (any case) or ``"folder:<path>"``. ``data_path`` is
    the folder holding the data sets (None or "": ``$AUGSSL_DATA_DIR`` or the repository's
    ``input/``); for ``"custom"`` it is the data set's own folder. ``"SVHN_extra"`` is SVHN with
    the 531,131 extra images appended to the training split. Missing data is downloaded through
    torchvision when ``download`` is true; ImageNet and folder data sets are never downloaded.
    ``image_size`` sets the square size folder images are resized and centre-cropped to
    (default: 224 for ImageNet, the first training image's shorter side for custom folders);
    array data sets keep their native size.

    Raises :class:`DatasetNotFoundError` when the data is missing and cannot be downloaded.
    """
    if name.lower().startswith(FOLDER_PREFIX):
        return _load_custom(Path(name[len(FOLDER_PREFIX):]).expanduser(), image_size)
    canonical = canonical_name(name)
    if canonical == "custom":
        if data_path is None or os.fspath(data_path) == "":
            raise ValueError("data set 'custom' reads the folder given as data_path, and none "
                             f"was given: pass data_path=<folder> or name='{FOLDER_PREFIX}"
                             "<folder>'. Expected " + folders.CUSTOM_LAYOUT)
        return _load_custom(Path(data_path).expanduser(), image_size)
    root = resolve_data_root(data_path)
    if canonical == "ImageNet":
        return _load_imagenet(root, image_size)
    loader, native_size = _ARRAY_LOADERS[canonical]
    if image_size is not None and image_size != native_size:
        raise ValueError(f"{canonical} images are {native_size} x {native_size}; "
                         f"image_size={image_size} applies only to ImageNet and folder data "
                         "sets. Resize in the transform pipeline instead, or leave image_size "
                         "unset.")
    return loader(root, download)
