"""Predictions of a saved model over a folder of images (the `predict` entry)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from augssl.config import ConfigError
from augssl.engine.checkpoint import load_checkpoint
from augssl.models import build_model

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MODEL_FILES = {"final": "final_model.pt", "best": "best_model.pt"}


def folder_name(class_name: str) -> str:
    """The folder a class's images live in: class names may hold '/' ("T-shirt/top")."""
    return class_name.replace("/", "_")


def resolve_model_file(model: str, which: str = "final") -> Path:
    """A model file path, or the ``which`` model file of an MLflow run id."""
    candidate = Path(model).expanduser()
    if candidate.is_file():
        return candidate
    if candidate.suffix == ".pt" or "/" in model:
        raise ConfigError(f"model {model!r}: no such file. Expected a model file (final_model.pt "
                          "or best_model.pt of a run) or an MLflow run id.")
    from augssl.engine.tracking import run_artifact_dir

    path = run_artifact_dir(model) / MODEL_FILES[which]
    if not path.is_file():
        raise ConfigError(f"run {model} has no {MODEL_FILES[which]}: it did not finish "
                          "(use which=best for its best model so far) or is not a training run.")
    return path


@dataclass
class LoadedModel:
    model: torch.nn.Module
    classes: list[str]
    in_channels: int
    image_size: int
    mean: torch.Tensor
    std: torch.Tensor


def load_model(path: Path, device: torch.device) -> LoadedModel:
    state = load_checkpoint(path, map_location=device)
    missing = {"network", "classes", "in_channels", "image_size", "mean", "std"} - set(state)
    if missing:
        raise ConfigError(f"{path} is not a model file written by a training run (it lacks "
                          f"{', '.join(sorted(missing))}): pass final_model.pt or best_model.pt.")
    model = build_model(state["network"], num_classes=len(state["classes"]),
                        in_channels=state["in_channels"])
    model.load_state_dict(state["model"])
    view = (1, -1, 1, 1)
    return LoadedModel(model.to(device).eval(), list(state["classes"]), state["in_channels"],
                       state["image_size"],
                       torch.tensor(state["mean"], device=device).view(view) * 255,
                       torch.tensor(state["std"], device=device).view(view) * 255)


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
    with Image.open(path) as image:
        image = image.convert("L" if loaded.in_channels == 1 else "RGB")
        if image.size != (loaded.image_size, loaded.image_size):
            raise ConfigError(
                f"{path} is {image.size[0]}x{image.size[1]} but the model takes "
                f"{loaded.image_size}x{loaded.image_size} images: resize the images first.")
        array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


@torch.no_grad()
def predict(loaded: LoadedModel, paths: list[Path], batch_size: int = 256) -> np.ndarray:
    """Class probabilities, one row per image."""
    device = loaded.mean.device
    rows = []
    for start in range(0, len(paths), batch_size):
        batch = np.stack([read_image(p, loaded) for p in paths[start:start + batch_size]])
        images = torch.from_numpy(batch).to(device).float()
        logits = loaded.model((images - loaded.mean) / loaded.std)
        rows.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
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
