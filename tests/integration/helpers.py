"""Shared pieces of the end-to-end tests."""

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

needs_fashion_mnist = pytest.mark.skipif(
    not FASHION.exists() and not (ROOT / "input" / "FashionMNIST").exists(),
    reason="Fashion-MNIST is not installed (make data)")

TINY = {"num_labelled_samples": 600, "num_validation_samples": 300, "batch_size": 64,
        "num_epochs": 2, "eval_every": 2, "log_every": 2, "checkpoint_every": 5,
        "num_workers": 0, "cutout_size": 8}


def tiny(**overrides) -> str:
    """A params string for a run of a few seconds on Fashion-MNIST, with ``overrides``."""
    return ";".join(f"{key}={value}" for key, value in {**TINY, **overrides}.items())


def run_script(env, *args, check=True):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n"
                             f"{result.stderr[-4000:]}")
    return result


def all_runs():
    experiments = mlflow.search_experiments()
    return mlflow.search_runs([e.experiment_id for e in experiments], output_format="list")


class SimulatedCrash(RuntimeError):
    """Raised inside training to stand for a crash of the process."""


def crash_at(monkeypatch, iteration: int) -> None:
    """Make every training loop attached while ``monkeypatch`` holds crash after ``iteration``."""
    from ignite.engine import Events

    from augssl.engine.trainer import TrainingLoop

    attach = TrainingLoop.attach

    def attach_and_crash(loop):
        attach(loop)

        @loop.trainer.on(Events.ITERATION_COMPLETED(once=iteration))
        def crash(engine):
            raise SimulatedCrash(f"simulated crash at iteration {iteration}")

    monkeypatch.setattr(TrainingLoop, "attach", attach_and_crash)


def write_image_folder(root, per_class=3, size=None, mode="L"):
    """``per_class`` Fashion-MNIST test images of each class as PNG files, one folder per class;
    returns the class names."""
    from augssl.data.sources import load_dataset
    from augssl.inference import folder_name

    bundle = load_dataset("FashionMNIST")
    test = bundle.test
    for label, name in enumerate(bundle.classes):
        folder = root / folder_name(name)
        folder.mkdir(parents=True)
        for k, index in enumerate(np.flatnonzero(test.targets == label)[:per_class]):
            image = Image.fromarray(test.images[index, :, :, 0]).convert(mode)
            if size:
                image = image.resize((size, size))
            image.save(folder / f"{k}.png")
    return bundle.classes


def count_data_set_reads(monkeypatch) -> list[str]:
    """Record the name of each data set read (``load_dataset``) while ``monkeypatch`` holds."""
    from augssl.data import sources
    from augssl.engine import session

    reads, load = [], sources.load_dataset

    def counted(name, *args, **kwargs):
        reads.append(name)
        return load(name, *args, **kwargs)

    monkeypatch.setattr(sources, "load_dataset", counted)
    monkeypatch.setattr(session, "load_dataset", counted)
    return reads
