"""Small files in the real on-disk formats of the data sets, written by the tests themselves."""

import pickle
from pathlib import Path

import numpy as np


def random_images(rng: np.random.Generator, n: int, size: int, channels: int = 3) -> np.ndarray:
    return rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def write_cifar_pickle(path: Path, payload: dict) -> None:
    with path.open("wb") as handle:
        pickle.dump(payload, handle, protocol=2)


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """N x 32 x 32 x 3 -> N x 3072 rows, channel-major as in the official files."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_cifar10(root: Path, rng: np.random.Generator, per_batch: int = 3, test_count: int = 4):
    """cifar-10-batches-py/ with five training batches of ``per_batch`` images with random
    labels, and a test batch of ``test_count`` images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_images, train_labels = [], []
    for i in range(1, 6):
        images = random_images(rng, per_batch, 32)
        labels = rng.integers(0, 10, per_batch).tolist()
        write_cifar_pickle(folder / f"data_batch_{i}",
                           {"batch_label": f"batch {i}", "data": cifar_rows(images),
                            "labels": labels})
        train_images.append(images)
        train_labels += labels
    test_images = random_images(rng, test_count, 32)
    test_labels = [(0, 1, 2, 9)[i % 4] for i in range(test_count)]
    write_cifar_pickle(folder / "test_batch", {"data": cifar_rows(test_images),
                                               "labels": test_labels})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    write_cifar_pickle(folder / "batches.meta", {"label_names": names, "num_vis": 3072})
    return np.concatenate(train_images), np.array(train_labels), test_images, names
