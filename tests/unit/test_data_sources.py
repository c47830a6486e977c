"""Image sources and load_dataset, on small files written in each data set's real format."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
from PIL import Image

from augssl.data import sources
from augssl.data.errors import DatasetFormatError
from augssl.data.formats import read_idx
from augssl.data.sources import (
    DATASET_NAMES,
    ArraySource,
    DatasetBundle,
    DatasetNotFoundError,
    FolderSource,
    load_dataset,
)
from tests.fake_data import cifar_rows, write_cifar10, write_cifar_pickle

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def _images(rng: np.random.Generator, n: int, size: int, channels: int = 3) -> np.ndarray:
    return rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    type_code = {np.dtype(np.uint8): 0x08}[array.dtype]
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def _write_mnist_like(folder: Path, rng: np.random.Generator, compress: bool,
                      n_train: int = 12, n_test: int = 5):
    folder.mkdir(parents=True, exist_ok=True)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    train_labels = (np.arange(n_train) % 10).astype(np.uint8)
    test_labels = (np.arange(n_test) % 10).astype(np.uint8)
    _write_idx(folder / "train-images-idx3-ubyte", train, compress)
    _write_idx(folder / "train-labels-idx1-ubyte", train_labels, compress)
    _write_idx(folder / "t10k-images-idx3-ubyte", test, compress)
    _write_idx(folder / "t10k-labels-idx1-ubyte", test_labels, compress)
    return train, train_labels, test, test_labels


def _write_svhn(folder: Path, split: str, images: np.ndarray, digits: np.ndarray) -> None:
    import scipy.io

    folder.mkdir(parents=True, exist_ok=True)
    # The .mat files hold X as 32 x 32 x 3 x N and write digit 0 as label 10.
    labels = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
    scipy.io.savemat(folder / f"{split}_32x32.mat",
                     {"X": np.transpose(images, (1, 2, 3, 0)), "y": labels})


def _png(path: Path, size: tuple[int, int], colour: tuple[int, int, int], mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path)


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- in-memory sources --------------------------------------------------------------------

def test_array_source_serves_greyscale_and_rgb_images():
    rng = np.random.default_rng(0)
    grey = _images(rng, 4, 8, channels=1)
    source = ArraySource(grey, np.array([0, 1, 1, -1]), ["a", "b"])
    pil = source.load_pil(2)
    assert pil.mode == "L" and pil.size == (8, 8)
    np.testing.assert_array_equal(np.asarray(pil), grey[2, ..., 0])
    assert (len(source), source.channels, source.image_size, source.in_memory) == (4, 1, 8, True)
    assert source.targets.dtype == np.int64 and source.classes == ["a", "b"]

    rgb = _images(rng, 2, 8)
    pil = ArraySource(rgb, np.array([0, 0]), ["a"]).load_pil(1)
    assert pil.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(pil), rgb[1])


@pytest.mark.parametrize("images, targets, message", [
    (np.zeros((2, 8, 8, 3), np.float32), [0, 0], "uint8"),
    (np.zeros((2, 8, 8), np.uint8), [0, 0], "channel axis"),
    (np.zeros((2, 8, 8, 2), np.uint8), [0, 0], r"1 \(greyscale\) or 3"),
    (np.zeros((2, 8, 6, 3), np.uint8), [0, 0], "square"),
    (np.zeros((2, 8, 8, 3), np.uint8), [0], "one target per image"),
    (np.zeros((2, 8, 8, 3), np.uint8), [0, 2], "outside 0..1"),
])
def test_array_source_rejects_malformed_input(images, targets, message):
    with pytest.raises(ValueError, match=message):
        ArraySource(images, np.array(targets), ["a", "b"])


def test_folder_source_resizes_shorter_side_and_centre_crops(tmp_path):
    wide = tmp_path / "wide.png"
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = 255  # a white band in the middle third survives the centre crop
    Image.fromarray(image).save(wide)
    grey = tmp_path / "grey.png"
    _png(grey, (5, 5), (90, 0, 0), mode="L")
    source = FolderSource([wide, grey], np.array([0, 1]), ["x", "y"], image_size=10)
    assert source.in_memory is False and source.channels == 3
    out = source.load_pil(0)
    assert out.mode == "RGB" and out.size == (10, 10)
    assert np.asarray(out)[:, 2:8].min() > 200  # crop centred on the band
    assert source.load_pil(1).mode == "RGB" and source.load_pil(1).size == (10, 10)
    unresized = FolderSource([wide], np.array([0]), ["x"]).load_pil(0)
    assert unresized.size == (40, 20)


def test_folder_source_names_an_unreadable_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(OSError, match="broken.png"):
        FolderSource([bad], np.array([0]), ["x"]).load_pil(0)


# --- CIFAR --------------------------------------------------------------------------------

def test_cifar10_loads_from_the_python_batches(tmp_path):
    train, train_labels, test, names = write_cifar10(tmp_path, np.random.default_rng(1))
    bundle = load_dataset("cifar10", tmp_path, download=False)
    assert isinstance(bundle, DatasetBundle) and bundle.name == "CIFAR10"
    np.testing.assert_array_equal(bundle.train.images, train)
    np.testing.assert_array_equal(bundle.train.targets, train_labels)
    np.testing.assert_array_equal(bundle.test.images, test)
    assert bundle.classes == tuple(names) and bundle.train.classes == names
    assert (bundle.channels, bundle.image_size, bundle.flip) == (3, 32, True)
    assert bundle.mean == (0.4914, 0.4822, 0.4465) and bundle.std == (0.2470, 0.2435, 0.2616)
    assert bundle.unlabeled is None


def test_cifar10_well_formed_files_load_although_torchvision_rejects_their_checksums(
        tmp_path, monkeypatch):
    import torchvision.datasets

    write_cifar10(tmp_path, np.random.default_rng(2))
    with pytest.raises(RuntimeError):
        torchvision.datasets.CIFAR10(str(tmp_path), train=True, download=False)

    def no_download(*args, **kwargs):
        raise AssertionError("present files must not trigger a download")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_download)
    assert len(load_dataset("CIFAR10", tmp_path, download=True).train) == 15


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train, test = _images(rng, 6, 32), _images(rng, 2, 32)
    fine = [99, 0, 5, 5, 42, 7]
    write_cifar_pickle(folder / "train", {"data": cifar_rows(train), "fine_labels": fine,
                                           "coarse_labels": [0] * 6})
    write_cifar_pickle(folder / "test", {"data": cifar_rows(test), "fine_labels": [1, 2],
                                          "coarse_labels": [0, 0]})
    write_cifar_pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)],
                                          "coarse_label_names": ["x"] * 20})
    bundle = load_dataset("CIFAR100", tmp_path, download=False)
    np.testing.assert_array_equal(bundle.train.targets, fine)
    np.testing.assert_array_equal(bundle.train.images, train)
    assert bundle.num_classes == 100 and bundle.classes[99] == "c99"
    assert bundle.mean == (0.5071, 0.4865, 0.4409)


def test_cifar_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    write_cifar10(tmp_path, np.random.default_rng(4))

    class Payload:
        def __reduce__(self):
            return (print, ("side effect",))

    write_cifar_pickle(tmp_path / "cifar-10-batches-py" / "test_batch",
                        {"data": Payload(), "labels": []})
    with pytest.raises(DatasetFormatError, match="test_batch.*refusing to load .*print"):
        load_dataset("CIFAR10", tmp_path, download=False)
    assert "side effect" not in capsys.readouterr().out


# --- SVHN ---------------------------------------------------------------------------------

def test_svhn_maps_label_10_to_digit_0_and_keeps_pixel_layout(tmp_path):
    rng = np.random.default_rng(5)
    train, test = _images(rng, 5, 32), _images(rng, 3, 32)
    train_digits = np.array([0, 1, 9, 0, 5])
    _write_svhn(tmp_path / "SVHN", "train", train, train_digits)
    _write_svhn(tmp_path / "SVHN", "test", test, np.array([0, 3, 4]))
    bundle = load_dataset("SVHN", tmp_path, download=False)
    np.testing.assert_array_equal(bundle.train.targets, train_digits)
    np.testing.assert_array_equal(bundle.train.images, train)
    np.testing.assert_array_equal(bundle.test.targets, [0, 3, 4])
    assert bundle.classes == tuple("0123456789")
    assert bundle.flip is False and bundle.mean == (0.4377, 0.4438, 0.4728)


def test_svhn_extra_appends_the_extra_split_and_reads_torchvision_flat_layout(tmp_path):
    rng = np.random.default_rng(6)
    # torchvision's SVHN keeps the .mat files directly in its root folder.
    _write_svhn(tmp_path, "train", _images(rng, 4, 32), np.array([1, 2, 3, 4]))
    _write_svhn(tmp_path, "test", _images(rng, 2, 32), np.array([1, 2]))
    extra = _images(rng, 3, 32)
    _write_svhn(tmp_path, "extra", extra, np.array([0, 7, 8]))
    bundle = load_dataset("svhn_extra", tmp_path, download=False)
    assert bundle.name == "SVHN_extra" and len(bundle.train) == 7 and len(bundle.test) == 2
    np.testing.assert_array_equal(bundle.train.targets[4:], [0, 7, 8])
    np.testing.assert_array_equal(bundle.train.images[4:], extra)
    assert len(load_dataset("SVHN", tmp_path, download=False).train) == 4


# --- MNIST family -------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_idx_files_plain_or_gzipped(tmp_path, compress):
    train, train_labels, test, _ = _write_mnist_like(tmp_path / "MNIST" / "raw",
                                                     np.random.default_rng(7), compress)
    bundle = load_dataset("MNIST", tmp_path, download=False)
    assert bundle.train.images.shape == (12, 28, 28, 1) and bundle.train.images.dtype == np.uint8
    np.testing.assert_array_equal(bundle.train.images[..., 0], train)
    np.testing.assert_array_equal(bundle.train.targets, train_labels)
    np.testing.assert_array_equal(bundle.test.images[..., 0], test)
    assert (bundle.channels, bundle.image_size, bundle.flip) == (1, 28, False)
    assert bundle.mean == (0.1307,) and bundle.std == (0.3081,)
    assert bundle.train.load_pil(0).mode == "L"


def test_truncated_idx_file_is_reported_with_its_name(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    _write_idx(path, np.zeros((3, 28, 28), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetFormatError, match="train-images-idx3-ubyte.*download"):
        read_idx(path)


@pytest.mark.skipif(not FASHION_SYSTEM_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_the_system_package(tmp_path):
    bundle = load_dataset("FashionMNIST", tmp_path / "empty", download=False)
    assert bundle.train.images.shape == (60000, 28, 28, 1)
    assert bundle.test.images.shape == (10000, 28, 28, 1)
    assert bundle.train.images.dtype == np.uint8 and bundle.train.targets.dtype == np.int64
    assert bundle.classes == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                              "Shirt", "Sneaker", "Bag", "Ankle boot")
    np.testing.assert_array_equal(np.bincount(bundle.train.targets), [6000] * 10)
    pixels = bundle.train.images.astype(np.float32) / 255.0
    assert pixels.mean() == pytest.approx(bundle.mean[0], abs=5e-4)
    assert pixels.std() == pytest.approx(bundle.std[0], abs=5e-4)


def test_fashion_mnist_prefers_data_path_over_the_system_copy(tmp_path):
    _write_mnist_like(tmp_path / "FashionMNIST" / "raw", np.random.default_rng(8), True)
    bundle = load_dataset("fashion-mnist", tmp_path, download=False)
    assert len(bundle.train) == 12 and bundle.classes[0] == "T-shirt/top"


def test_fashion_mnist_files_directly_in_data_path(tmp_path):
    _write_mnist_like(tmp_path, np.random.default_rng(9), compress=False, n_train=3)
    assert len(load_dataset("FashionMNIST", tmp_path, download=False).train) == 3


def test_missing_fashion_mnist_lists_every_place_and_the_debian_package(tmp_path, monkeypatch):
    nowhere = tmp_path / "system"
    monkeypatch.setattr(sources, "FASHION_MNIST_SYSTEM_DIRS", (nowhere,))
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("FashionMNIST", tmp_path / "data", download=False)
    message = str(caught.value)
    assert str(tmp_path / "data" / "FashionMNIST" / "raw") in message
    assert str(nowhere) in message and "dataset-fashion-mnist" in message
    assert isinstance(caught.value, FileNotFoundError)
    assert caught.value.dataset == "FashionMNIST" and len(caught.value.searched) == 4


# --- downloads ----------------------------------------------------------------------------

def test_failed_download_becomes_dataset_not_found(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("CIFAR10", tmp_path, download=True)
    message = str(caught.value)
    assert "CIFAR10" in message and str(tmp_path / "cifar-10-batches-py") in message
    assert "URLError" in message and "Name or service not known" in message
    assert caught.value.__suppress_context__  # the network traceback is not chained


def test_downloaded_files_are_found_after_the_download(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def fake_mnist(root, download, train):
        calls.append((root, download))
        _write_mnist_like(Path(root) / "MNIST" / "raw", np.random.default_rng(10), True)

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_mnist)
    bundle = load_dataset("MNIST", tmp_path, download=True)
    assert calls == [(str(tmp_path), True)] and len(bundle.train) == 12


# --- STL-10 -------------------------------------------------------------------------------

def _stl_bytes(images: np.ndarray) -> bytes:
    return np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes()  # channel, column, row


def test_stl10_reads_binary_files_and_exposes_the_unlabelled_split(tmp_path):
    rng = np.random.default_rng(11)
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    train, test, unlabelled = _images(rng, 3, 96), _images(rng, 2, 96), _images(rng, 4, 96)
    (folder / "train_X.bin").write_bytes(_stl_bytes(train))
    (folder / "train_y.bin").write_bytes(bytes([1, 10, 4]))
    (folder / "test_X.bin").write_bytes(_stl_bytes(test))
    (folder / "test_y.bin").write_bytes(bytes([2, 3]))
    (folder / "unlabeled_X.bin").write_bytes(_stl_bytes(unlabelled))
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    bundle = load_dataset("STL10", tmp_path, download=False)
    np.testing.assert_array_equal(bundle.train.images, train)
    np.testing.assert_array_equal(bundle.train.targets, [0, 9, 3])
    np.testing.assert_array_equal(bundle.test.targets, [1, 2])
    np.testing.assert_array_equal(np.asarray(bundle.unlabeled.load_pil(3)), unlabelled[3])
    np.testing.assert_array_equal(bundle.unlabeled.targets, [-1] * 4)
    assert bundle.classes == tuple(names) and bundle.image_size == 96


# --- folder data sets ---------------------------------------------------------------------

def _make_custom(root: Path) -> None:
    for split, counts in (("train", {"dog": 3, "cat": 2}), ("test", {"cat": 1, "dog": 1})):
        for name, count in counts.items():
            for i in range(count):
                _png(root / split / name / f"img {i}.png", (16, 16), (10 * i, 50, 200))
    _png(root / "unlabeled" / "batch1" / "u0.png", (16, 16), (1, 2, 3))
    _png(root / "unlabeled" / "u1.PNG", (16, 16), (4, 5, 6))
    (root / "train" / "dog" / "notes.txt").write_text("not an image")


def test_custom_folder_loads_in_place_without_touching_files(tmp_path):
    root = tmp_path / "my data"
    _make_custom(root)
    before = _snapshot(root)
    bundle = load_dataset(f"folder:{root}")
    for source in (bundle.train, bundle.test, bundle.unlabeled):
        for i in range(len(source)):
            assert source.load_pil(i).size == (16, 16)
    assert _snapshot(root) == before
    assert bundle.classes == ("cat", "dog") and bundle.name == "custom"
    np.testing.assert_array_equal(bundle.train.targets, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(bundle.test.targets, [0, 1])
    assert all(Path(p).parent.parent == root / "train" for p in bundle.train.paths)
    assert len(bundle.unlabeled) == 2 and set(bundle.unlabeled.targets) == {-1}
    assert (bundle.image_size, bundle.channels, bundle.mean) == (16, 3, (0.485, 0.456, 0.406))
    same = load_dataset("custom", root, image_size=8)
    assert same.train.paths == bundle.train.paths and same.train.load_pil(0).size == (8, 8)


def test_custom_test_class_missing_from_train_is_an_error(tmp_path):
    _make_custom(tmp_path)
    _png(tmp_path / "test" / "bird" / "b.png", (16, 16), (0, 0, 0))
    with pytest.raises(ValueError, match=r"\['bird'\]"):
        load_dataset(f"folder:{tmp_path}")


def test_custom_without_a_folder_explains_the_layout(tmp_path):
    with pytest.raises(ValueError, match="data_path"):
        load_dataset("custom")
    with pytest.raises(DatasetNotFoundError, match="train/<class name>"):
        load_dataset(f"folder:{tmp_path}")


def test_imagenet_style_folders_are_resized_for_batching(tmp_path):
    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        for wnid, size in (("n01440764", (50, 30)), ("n01443537", (30, 60))):
            _png(root / split / wnid / f"{split}_{wnid}.JPEG", size, (120, 30, 60))
    bundle = load_dataset("ImageNet", tmp_path, image_size=24)
    assert bundle.classes == ("n01440764", "n01443537") and len(bundle.test) == 2
    assert all(bundle.train.load_pil(i).size == (24, 24) for i in range(2))
    assert bundle.mean == (0.485, 0.456, 0.406) and bundle.train.in_memory is False
    assert load_dataset("imagenet", tmp_path).image_size == 224


def test_imagenet_flat_validation_folder_is_explained(tmp_path):
    _png(tmp_path / "train" / "n01" / "a.JPEG", (8, 8), (0, 0, 0))
    _png(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG", (8, 8), (0, 0, 0))
    with pytest.raises(ValueError, match="<wnid>"):
        load_dataset("ImageNet", tmp_path)


# --- names and missing data ---------------------------------------------------------------

def test_missing_data_names_the_searched_paths(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("CIFAR100", tmp_path, download=False)
    assert str(tmp_path / "cifar-100-python") in str(caught.value)
    assert "download=True" in str(caught.value)


def test_partial_file_set_names_the_missing_files(tmp_path):
    write_cifar10(tmp_path, np.random.default_rng(12))
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="missing data_batch_3"):
        load_dataset("CIFAR10", tmp_path, download=False)


@pytest.mark.parametrize("typo, suggestion", [
    ("cifar-11", "CIFAR10"), ("fashionmnst", "FashionMNIST"), ("imagnet", "ImageNet")])
def test_unknown_name_suggests_the_closest(typo, suggestion):
    with pytest.raises(ValueError, match=f"Did you mean '{suggestion}'"):
        load_dataset(typo)


def test_image_size_is_refused_for_array_data_sets_before_loading(tmp_path):
    with pytest.raises(ValueError, match="32 x 32"):
        load_dataset("CIFAR10", tmp_path / "absent", download=False, image_size=64)


def test_every_name_is_listed():
    assert set(DATASET_NAMES) == {"CIFAR10", "CIFAR100", "SVHN", "SVHN_extra", "MNIST",
                                  "FashionMNIST", "STL10", "ImageNet", "custom"}
