"""`make demo`: UDA2 against the supervised baseline on Fashion-MNIST with 100 labels, both
through `mlflow run` on the CPU, with the same model, labels and number of steps.

Prints both test accuracies and the commands that open the MLflow UI and TensorBoard.
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "demo"
DEMO_PARAMS = ("num_labelled_samples=100;num_validation_samples=1000;batch_size=32;"
               "epoch_length=100;num_epochs=5;learning_rate=0.05;weight_decay=5e-4;"
               "policy=cutout;cutout_size=8;seed=0;log_every=20")
UDA2_PARAMS = DEMO_PARAMS + ";unlabelled_batch_size=96;strong_policy=randaugment"


def run_entry(entry: str, dataset: str, network: str, params: str) -> str:
    """Run one entry through `mlflow run` (local environment); returns its run id."""
    command = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry,
               "--env-manager", "local", "--experiment-name", EXPERIMENT,
               "-P", f"dataset={dataset}", "-P", f"network={network}", "-P", f"params={params}"]
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
    results = {name: summarise(run_entry(entry, "FashionMNIST", "smallcnn", params))
               for name, entry, params in (("supervised baseline", "train", DEMO_PARAMS),
                                           ("UDA2", "main_uda2", UDA2_PARAMS))}
    print("\nFashion-MNIST, 100 labels, smallcnn, 500 steps:")
    for name, summary in results.items():
        print(f"  {name:<20} test accuracy {summary['test_accuracy']:.4f}  "
              f"({summary['wall_time_s']:.0f} s, run {summary['run_id']})")
    experiment_id = next(iter(results.values()))["experiment_id"]
    print("Open the runs:")
    print(f"  .venv/bin/mlflow ui --backend-store-uri {mlflow.get_tracking_uri()} "
          "--host 127.0.0.1 --port 5000")
    print(f"  .venv/bin/tensorboard --logdir mlruns/{experiment_id} --host 127.0.0.1")


if __name__ == "__main__":
    main()
