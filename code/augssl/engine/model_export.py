"""Model files a run leaves: state dicts with what is needed to use them again (network, classes,
input shape, normalisation), and a loadable MLflow model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def model_metadata(bundle, config) -> dict:
    """Everything `predict` needs besides the weights (plain values: loadable weights-only)."""
    return {"network": config.network, "num_classes": len(bundle.classes),
            "in_channels": bundle.channels, "image_size": bundle.image_size,
            "classes": list(bundle.classes), "mean": list(bundle.mean), "std": list(bundle.std)}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module itself, without a DistributedDataParallel wrapper."""
    return getattr(model, "module", model)


def save_model_file(model: torch.nn.Module, metadata: dict, path: Path, **extra) -> None:
    torch.save({"model": unwrap(model).state_dict(), **metadata, **extra}, path)


def export_final_model(model: torch.nn.Module, tracker, metadata: dict) -> None:
    import mlflow

    import augssl

    save_model_file(model, metadata, tracker.path("final_model.pt"))
    module = unwrap(model)
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    size = metadata["image_size"]
    example = np.zeros((2, metadata["in_channels"], size, size), np.float32)
    # code_paths ships the package with the model, so it loads where augssl is not installed
    mlflow.pytorch.log_model(module.cpu().eval(), name="model", pip_requirements=requirements,
                             input_example=example,
                             code_paths=[str(Path(augssl.__file__).parent)])
