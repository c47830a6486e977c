"""Model files a run leaves: state dicts with what is needed to use them again (network, classes,
input shape, normalisation), and MLflow models of raw images built on them (`augssl.serving`)."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

BEST_MODEL_FILE = "best_model.pt"  # the best on validation so far, rewritten as training goes
FINAL_MODEL_FILE = "final_model.pt"
# MLflow models of a run (artifact paths): `predict` takes a run id and which one of them
MLFLOW_MODELS = {"final": "model", "best": "best_model"}
# what the logged model's code imports (augssl.serving, augssl.models), as installed here
SERVING_DISTRIBUTIONS = ("torch", "torchvision", "numpy", "pandas")


def model_metadata(bundle, config) -> dict:
    """Everything `predict` needs besides the weights (plain values: loadable weights-only)."""
    return {"network": config.network, "num_classes": len(bundle.classes),
            "in_channels": bundle.channels, "image_size": bundle.image_size,
            "classes": list(bundle.classes), "mean": list(bundle.mean), "std": list(bundle.std)}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module itself, without a DistributedDataParallel wrapper."""
    return getattr(model, "module", model)


def save_model_file(model: torch.nn.Module, metadata: dict, path: Path, **extra) -> None:
    """Write atomically: a crash while it is rewritten leaves the previous file whole."""
    partial = path.with_suffix(".partial")
    torch.save({"model": unwrap(model).state_dict(), **metadata, **extra}, partial)
    os.replace(partial, path)


def serving_requirements() -> list[str]:
    # local version labels (torch's "+cpu") name no release an index serves
    return [f"{name}=={version(name).split('+')[0]}" for name in SERVING_DISTRIBUTIONS]


def signature(metadata: dict):
    """uint8 images (N, H, W, C) in, one probability column per class label out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    size, channels = metadata["image_size"], metadata["in_channels"]
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, size, size, channels))]),
        outputs=Schema([ColSpec("float", name) for name in metadata["classes"]]))


def log_classifier(weights: Path, name: str, metadata: dict, register_as: str = "") -> None:
    """Log the model file ``weights`` as the MLflow model ``name`` of the active run, and
    register it as ``register_as`` when given."""
    import mlflow

    import augssl
    from augssl.serving import WEIGHTS

    package = Path(augssl.__file__).parent
    size, channels = metadata["image_size"], metadata["in_channels"]
    # code_paths ships the package with the model, so it loads where augssl is not installed
    mlflow.pyfunc.log_model(
        name=name, python_model=str(package / "serving_model.py"),
        artifacts={WEIGHTS: str(weights)}, code_paths=[str(package)], signature=signature(metadata),
        input_example=np.zeros((1, size, size, channels), np.uint8),
        pip_requirements=serving_requirements(), registered_model_name=register_as or None)


def export_models(model: torch.nn.Module, tracker, metadata: dict, register_as: str) -> None:
    """The final model, and the best on validation when there is one, as model files and MLflow
    models; ``register_as`` (when given) registers the best, else the final one."""
    final = tracker.path(FINAL_MODEL_FILE)
    save_model_file(model, metadata, final)
    best = tracker.fetch(BEST_MODEL_FILE)
    log_classifier(final, MLFLOW_MODELS["final"], metadata,
                   register_as="" if best is not None else register_as)
    if best is not None:
        log_classifier(best, MLFLOW_MODELS["best"], metadata, register_as=register_as)
