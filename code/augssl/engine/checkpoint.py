"""Checkpoints that hold everything a run needs to go on: weights, optimiser, schedule, EMA,
loss scaler, trainer position and random state. Loaded with ``weights_only=True`` only."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from augssl.config import ConfigError

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"checkpoint_(\d+)\.pt$")


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    # a checkpoint loaded onto a GPU brings its RNG states there; the setters take CPU tensors
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(folder: Path, iteration: int, objects: dict, keep: int = 2) -> Path:
    """Write ``checkpoint_<iteration>.pt`` atomically and keep only the ``keep`` newest."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: obj.state_dict() for name, obj in objects.items()}
    state["rng"] = rng_state()
    target = folder / f"checkpoint_{iteration}.pt"
    partial = target.with_suffix(".pt.partial")
    torch.save(state, partial)
    os.replace(partial, target)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink()
    return target


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints of a folder, oldest first."""
    found = [(int(m.group(1)), p) for p in folder.glob("checkpoint_*.pt")
             if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ConfigError(f"cannot read checkpoint {path}: {error}. "
                          "Pass another checkpoint or a run id whose checkpoints are intact."
                          ) from None


def restore(state: dict, objects: dict) -> None:
    """Load each object's state from a checkpoint; missing parts are an error, not a silent skip."""
    missing = [name for name in objects if name not in state]
    if missing:
        raise ConfigError(f"the checkpoint lacks {', '.join(missing)}: it was written by another "
                          "entry or configuration. Resume with the entry and params that wrote it.")
    for name, obj in objects.items():
        obj.load_state_dict(state[name])
    set_rng_state(state["rng"])


def resolve_resume(resume: str) -> tuple[Path, str | None]:
    """``resume`` (a checkpoint path or an MLflow run id) -> (checkpoint path, run id or None)."""
    candidate = Path(resume).expanduser()
    if candidate.is_file():
        return candidate, None
    if candidate.suffix == ".pt" or os.sep in resume:
        raise ConfigError(f"resume={resume!r}: no such checkpoint file. Expected a checkpoint "
                          "path or the id of an MLflow run that saved checkpoints.")
    from augssl.engine.tracking import run_artifact_dir

    folder = run_artifact_dir(resume) / CHECKPOINT_DIR
    checkpoints = list_checkpoints(folder) if folder.is_dir() else []
    if not checkpoints:
        raise ConfigError(f"run {resume} has no checkpoint in {folder}: it stopped before its "
                          "first checkpoint (checkpoint_every iterations). Start it anew.")
    return checkpoints[-1], resume
