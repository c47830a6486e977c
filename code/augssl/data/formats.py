"""Readers for the standard on-disk formats of the benchmark image data sets.

Each reader returns images as uint8 arrays of shape N x H x W x C and labels as int64, and checks
the shapes it reads so that a truncated download fails here with the file's name instead of later
inside training. Checksums are not compared: a well-formed file set must load even when it is not
the byte-exact official release (a re-packed copy, or a small test fixture).
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from augssl.data.errors import DatasetFormatError

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type codes (third byte of the magic number) and their big-endian numpy types.
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _corrupt(path: Path, problem: str) -> DatasetFormatError:
    return DatasetFormatError(
        f"{path} is not a valid data file: {problem}. It is probably truncated or corrupt: "
        "delete it and download the data set again.")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST family's format), plain or gzip-compressed.

    Compression is detected from the content, not the file name.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise _corrupt(path, f"gzip stream cannot be decompressed ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise _corrupt(path, "missing IDX magic number")
    dtype = _IDX_TYPES[raw[2]]
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise _corrupt(path, "header shorter than its declared dimensions")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header_len != expected:
        raise _corrupt(path, f"header declares shape {shape} ({expected} bytes of data) but "
                             f"the file holds {len(raw) - header_len} bytes")
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def read_idx_pair(images_path: str | Path,
                  labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x H x W x 1 uint8) and labels (N int64) from an IDX image file and label file."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise _corrupt(Path(images_path), f"expected N x H x W uint8 images, got shape "
                                          f"{images.shape} of {images.dtype}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise _corrupt(Path(labels_path), f"expected {len(images)} labels to match "
                                          f"{images_path}, got shape {labels.shape}")
    return images[..., np.newaxis], labels.astype(np.int64)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only.

    The CIFAR files are pickles; refusing every other global keeps a tampered file from running
    code at load time.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: CIFAR files hold "
                                         "only dicts, lists and numpy arrays")
        return super().find_class(module, name)


def _load_cifar_pickle(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            # latin1 decodes the Python 2 byte strings of the official release losslessly.
            entry = _ArrayOnlyUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as err:
        raise _corrupt(path, f"cannot unpickle it ({err})") from None
    if not isinstance(entry, dict):
        raise _corrupt(path, f"expected a pickled dict, got {type(entry).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def read_cifar_batches(paths: Sequence[str | Path],
                       label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 32 x 32 x 3 uint8) and labels from CIFAR python-format batch files.

    ``label_key`` is "labels" for CIFAR-10 and "fine_labels" for CIFAR-100.
    """
    images, labels = [], []
    for path in map(Path, paths):
        entry = _load_cifar_pickle(path)
        if "data" not in entry or label_key not in entry:
            raise _corrupt(path, f"expected keys 'data' and '{label_key}', found {sorted(entry)}")
        data = np.asarray(entry["data"])
        batch_labels = np.asarray(entry[label_key], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise _corrupt(path, f"expected 'data' of shape N x 3072 uint8, got {data.shape} "
                                 f"of {data.dtype}")
        if batch_labels.shape != (len(data),):
            raise _corrupt(path, f"{len(data)} images but {batch_labels.size} labels")
        # Rows are stored channel-major (1024 red, then green, then blue values).
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels)
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def read_cifar_class_names(path: str | Path, key: str) -> list[str]:
    """Class names from a CIFAR meta file ("label_names" or "fine_label_names")."""
    path = Path(path)
    entry = _load_cifar_pickle(path)
    if key not in entry:
        raise _corrupt(path, f"expected key '{key}', found {sorted(entry)}")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in entry[key]]


def read_svhn_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 32 x 32 x 3 uint8) and digit labels 0-9 from an SVHN cropped-digits .mat file.

    The file labels digit 0 as 10; it is mapped back to 0 so that the label is the digit.
    """
    import scipy.io  # only SVHN needs scipy; keep it off the import path of everything else

    path = Path(path)
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, OSError, TypeError) as err:
        raise _corrupt(path, f"cannot read it as a MATLAB file ({err})") from None
    if "X" not in mat or "y" not in mat:
        raise _corrupt(path, "expected variables 'X' and 'y'")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise _corrupt(path, f"expected X of shape 32 x 32 x 3 x N, got {x.shape}")
    if len(y) != x.shape[3]:
        raise _corrupt(path, f"{x.shape[3]} images but {len(y)} labels")
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise _corrupt(path, f"labels must lie in 1..10, found {labels.min()}..{labels.max()}")
    labels[labels == 10] = 0
    images = np.ascontiguousarray(np.transpose(x, (3, 0, 1, 2)).astype(np.uint8, copy=False))
    return images, labels


_STL10_SIDE = 96
_STL10_IMAGE_BYTES = 3 * _STL10_SIDE * _STL10_SIDE


def read_stl10_images(path: str | Path) -> np.ndarray:
    """STL-10 binary images as an N x 96 x 96 x 3 uint8 view of a memory map.

    The unlabelled split is 2.7 GB; mapping it keeps it out of RAM until images are used.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0 or size % _STL10_IMAGE_BYTES:
        raise _corrupt(path, f"size {size} is not a positive multiple of {_STL10_IMAGE_BYTES} "
                             "bytes (one 96 x 96 x 3 image)")
    flat = np.memmap(path, dtype=np.uint8, mode="r")
    # Each image is stored column-major per channel: axes are (channel, column, row).
    return flat.reshape(-1, 3, _STL10_SIDE, _STL10_SIDE).transpose(0, 3, 2, 1)


def read_stl10_labels(path: str | Path, count: int) -> np.ndarray:
    """STL-10 labels (stored 1..10) as int64 0..9."""
    path = Path(path)
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if len(labels) != count:
        raise _corrupt(path, f"expected {count} labels to match the image file, got {len(labels)}")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise _corrupt(path, f"labels must lie in 1..10, found {labels.min()}..{labels.max()}")
    return labels - 1


def read_class_names_txt(path: str | Path) -> list[str]:
    """One class name per non-empty line (STL-10's class_names.txt)."""
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
