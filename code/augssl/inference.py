"""Predictions of a run's MLflow model over a folder of images (the `predict` entry)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from augssl.config import ConfigError
from augssl.engine.model_export import MLFLOW_MODELS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def folder_name(class_name: str) -> str:
    """The folder a class's images live in: class names may hold '/' ("T-shirt/top")."""
    return class_name.replace("/", "_")


def model_uri(model: str, which: str = "final") -> str:
    """The MLflow model to load: ``model`` itself when it is a model URI (runs:/, models:/, ...)
    or folder, else the ``which`` model of the MLflow run with that id."""
    if ":" in model or "/" in model or Path(model).expanduser().exists():
        return model
    from augssl.engine.tracking import existing_run

    existing_run(model)
    return f"runs:/{model}/{MLFLOW_MODELS[which]}"


@dataclass
class LoadedModel:
    model: object  # an mlflow.pyfunc.PyFuncModel of augssl.serving.ImageClassifier
    classes: list[str]
    image_size: int
    in_channels: int


def load_model(uri: str, device: torch.device) -> LoadedModel:
    """Load an MLflow model logged by a training run; its signature gives the image shape and
    the class labels."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as error:
        raise ConfigError(f"cannot load the MLflow model {uri} ({str(error).splitlines()[0]}). "
                          "A run has its models once it has finished (best_model: with a "
                          "validation split). Pass a run id, or a model URI such as "
                          "runs:/<id>/model or models:/<name>/<version>.") from None
    inputs, outputs = model.metadata.get_input_schema(), model.metadata.get_output_schema()
    if inputs is None or outputs is None or not inputs.is_tensor_spec():
        raise ConfigError(f"{uri} is not an image classifier logged by a training run (its "
                          "signature is not uint8 images in, class probabilities out).")
    _, height, width, channels = inputs.inputs[0].shape
    if height != width:
        raise ConfigError(f"{uri} takes {height}x{width} images: only square ones are read.")
    model.unwrap_python_model().to(device)
    return LoadedModel(model, outputs.input_names(), height, channels)


def list_images(folder: Path, classes: list[str]) -> tuple[list[Path], list[int] | None]:
    """Image paths and, when the folder has one subfolder per class, their labels."""
    if not folder.is_dir():
        raise ConfigError(f"images folder {folder} does not exist.")
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir())
    if not subfolders:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        labels = None
    else:
        known = {folder_name(name): index for index, name in enumerate(classes)}
        unknown = [p.name for p in subfolders if p.name not in known]
        if unknown:
            raise ConfigError(
                f"{folder} has class folders the model does not know: {', '.join(unknown)}. "
                f"The model's classes are: {', '.join(known)} ('/' in a class name is '_' in "
                "its folder name). Use a folder of this model's classes, or of loose images.")
        paths, labels = [], []
        for sub in subfolders:
            found = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            paths += found
            labels += [known[sub.name]] * len(found)
    if not paths:
        raise ConfigError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}.")
    return paths, labels


def read_image(path: Path, loaded: LoadedModel) -> np.ndarray:
    """The model's input layout: uint8 (H, W, C)."""
    with Image.open(path) as image:
        image = image.convert("L" if loaded.in_channels == 1 else "RGB")
        if image.size != (loaded.image_size, loaded.image_size):
            raise ConfigError(
                f"{path} is {image.size[0]}x{image.size[1]} but the model takes "
                f"{loaded.image_size}x{loaded.image_size} images: resize the images first.")
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def predict(loaded: LoadedModel, paths: list[Path], batch_size: int = 256) -> np.ndarray:
    """Class probabilities, one row per image."""
    rows = []
    for start in range(0, len(paths), batch_size):
        batch = np.stack([read_image(p, loaded) for p in paths[start:start + batch_size]])
        rows.append(loaded.model.predict(batch).to_numpy(np.float32))
    return np.concatenate(rows)


def write_predictions(path: Path, paths: list[Path], probabilities: np.ndarray,
                      classes: list[str]) -> tuple[Path, Path]:
    """CSV (path, predicted class, one probability column per class) and .npy of probabilities."""
    path.parent.mkdir(parents=True, exist_ok=True)
    csv_path, npy_path = path.with_suffix(".csv"), path.with_suffix(".npy")
    predicted = probabilities.argmax(1)
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "class"] + [f"p_{name}" for name in classes])
        for image, label, row in zip(paths, predicted, probabilities):
            writer.writerow([str(image), classes[label]] + [f"{p:.6f}" for p in row])
    np.save(npy_path, probabilities)
    return csv_path, npy_path
