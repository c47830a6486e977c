"""`make demo`: the supervised baseline on Fashion-MNIST through `mlflow run`, on the CPU.

Prints the test accuracy and the commands that open the MLflow UI and TensorBoard on the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "demo"
DEMO_PARAMS = ("num_labelled_samples=-1;num_validation_samples=5000;num_epochs=3;batch_size=128;"
               "learning_rate=0.05;policy=cutout;cutout_size=8;seed=0;checkpoint_every=500")


def run_entry(entry: str, dataset: str, network: str, params: str) -> str:
    """Run one entry through `mlflow run` (local environment); returns its run id."""
    command = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry, "--env-manager", "local",
               "--experiment-name", EXPERIMENT, "-P", f"dataset={dataset}",
               "-P", f"network={network}", "-P", f"params={params}"]
    print("$ mlflow", " ".join(command[3:-1]), repr(command[-1]), flush=True)
    before = {r.info.run_id for r in _runs()}
    # `mlflow run --env-manager local` starts `python` from PATH: make it this environment's
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    subprocess.run(command, check=True, cwd=ROOT,
                   env={**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"})
    new = [r for r in _runs() if r.info.run_id not in before]
    if not new:
        sys.exit("demo: the run did not appear in the tracking store")
    return new[0].info.run_id


def _runs():
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return mlflow.search_runs([experiment.experiment_id], output_format="list")


def summarise(run_id: str) -> dict:
    run = mlflow.get_run(run_id)
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    summary = json.loads((artifacts / "summary.json").read_text())
    summary["experiment_id"] = run.info.experiment_id
    return summary


def main() -> None:
    os.chdir(ROOT)
    run_id = run_entry("train", "FashionMNIST", "smallcnn", DEMO_PARAMS)
    summary = summarise(run_id)
    tracking = mlflow.get_tracking_uri()
    print()
    print(f"Supervised baseline (smallcnn, all labels, 3 epochs): test accuracy "
          f"{summary['test_accuracy']:.4f} in {summary['wall_time_s']:.0f} s  (run {run_id})")
    print("Open the runs:")
    print(f"  .venv/bin/mlflow ui --backend-store-uri {tracking} --host 127.0.0.1 --port 5000")
    print(f"  .venv/bin/tensorboard --logdir mlruns/{summary['experiment_id']} --host 127.0.0.1")


if __name__ == "__main__":
    main()
