"""Checkpoints that hold everything a run needs to go on: weights, optimiser, schedule, EMA,
loss scaler, trainer position and random state. Loaded with ``weights_only=True`` only."""

from __future__ import annotations

import os
import pickle
import re
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from ignite.handlers import DiskSaver

from augssl.config import ConfigError

CHECKPOINT_DIR = "checkpoints"
KEEP = 2  # checkpoints kept: the newest, and the one before in case the newest is cut short
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


# Not ignite's Checkpoint: its n_saved forgets, after a crash, the checkpoints written before
# it and drops the oldest before the newest is written; it also strips a DDP model's "module."
# prefix, so the checkpoints of multi-process runs would change. Only its DiskSaver is used.
def save_checkpoint(folder: Path, iteration: int, objects: dict) -> Path:
    """Write ``checkpoint_<iteration>.pt`` atomically (ignite's ``DiskSaver``), then keep only
    the ``KEEP`` newest of the folder, those of an attempt before a crash included."""
    state = {name: obj.state_dict() for name, obj in objects.items()}
    state["rng"] = rng_state()  # rather than ignite's Checkpoint: it holds no random state
    name = f"checkpoint_{iteration}.pt"
    DiskSaver(folder, atomic=True, create_dir=True, require_empty=False)(state, name)
    for old in list_checkpoints(folder)[:-KEEP]:
        old.unlink()
    return folder / name


def in_order(names: Iterable[str]) -> list[str]:
    """The checkpoint files among ``names`` (file names or paths), oldest first."""
    found = [(int(m.group(1)), name) for name in names if (m := _NAME.search(name))]
    return [name for _, name in sorted(found)]


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints of a folder, oldest first."""
    return [folder / name for name in in_order(p.name for p in folder.glob("checkpoint_*.pt"))]


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ConfigError(f"cannot read checkpoint {path}: {error}. "
                          "Pass another checkpoint or a run id whose checkpoints are intact."
                          ) from None


def restore(state: dict, objects: dict) -> None:
    """Load each object's state from a checkpoint; missing parts are an error, not a silent skip,
    except for an object that can tell its state from what an older checkpoint holds
    (``older_checkpoint_state``)."""
    older = {name: obj.older_checkpoint_state(state) for name, obj in objects.items()
             if name not in state and hasattr(obj, "older_checkpoint_state")}
    state = {**state, **{name: part for name, part in older.items() if part is not None}}
    missing = [name for name in objects if name not in state]
    if missing:
        raise ConfigError(f"the checkpoint lacks {', '.join(missing)}: it was written by another "
                          "entry or configuration. Resume with the entry and params that wrote it.")
    # not ignite's Checkpoint.load_objects: it loads a DDP model's inner module, which does not
    # fit the "module." keys of the checkpoints that multi-process runs have written
    for name, obj in objects.items():
        obj.load_state_dict(state[name])
    set_rng_state(state["rng"])


@dataclass(frozen=True)
class ResumePoint:
    """What ``resume=`` names: a checkpoint file, or an MLflow run whose newest readable
    checkpoint the run goes on from (in that same run)."""

    path: Path | None = None
    run_id: str | None = None

    def load(self, map_location="cpu") -> tuple[dict, str]:
        """The checkpoint's state and where it was read from."""
        if self.path is not None:
            return load_checkpoint(self.path, map_location), str(self.path)
        return _load_newest_of_run(self.run_id, map_location)


def resolve_resume(resume: str) -> ResumePoint:
    """Check ``resume`` (a checkpoint path or an MLflow run id) without reading a checkpoint."""
    candidate = Path(resume).expanduser()
    if candidate.is_file():
        return ResumePoint(path=candidate)
    if candidate.suffix == ".pt" or os.sep in resume:
        raise ConfigError(f"resume={resume!r}: no such checkpoint file. Expected a checkpoint "
                          "path or the id of an MLflow run that saved checkpoints.")
    if not run_checkpoints(resume):
        raise ConfigError(f"run {resume} has no checkpoint in its artifacts ({CHECKPOINT_DIR}/): "
                          "it stopped before its first checkpoint (checkpoint_every "
                          "iterations). Start it anew.")
    return ResumePoint(run_id=resume)


def run_checkpoints(run_id: str) -> list[str]:
    """Artifact paths of a run's checkpoints, oldest first, read through MLflow's artifact API
    (the same on a local store and on a tracking server)."""
    import mlflow

    from augssl.engine.tracking import existing_run

    existing_run(run_id)
    listed = mlflow.MlflowClient().list_artifacts(run_id, CHECKPOINT_DIR)
    return in_order(item.path for item in listed if not item.is_dir)


def _load_newest_of_run(run_id: str, map_location) -> tuple[dict, str]:
    """The newest checkpoint of a run that reads whole. A process killed while it uploaded a
    checkpoint may leave a truncated file on the store: the one before it is used then."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="augssl-resume-") as folder:
        for name in reversed(run_checkpoints(run_id)):
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name,
                                                        dst_path=folder)
            try:
                return load_checkpoint(Path(local), map_location), f"{name} of run {run_id}"
            except ConfigError as error:
                print(f"warning: {name} of run {run_id} is unreadable, trying the one before: "
                      f"{error}", file=sys.stderr)
            finally:
                Path(local).unlink(missing_ok=True)
    raise ConfigError(f"no checkpoint of run {run_id} is readable: start the run anew.")
