"""Where the trials of a sweep run: one after the other here, or as Ray Tune trials on a local
Ray or a cluster. Both run the same ``run_trial``, so both leave the same runs behind."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from dataclasses import dataclass

from augssl.analysis.trial import TrialTask, fail_run, run_trial

EXECUTORS = ("auto", "ray", "inprocess")


class ExecutorError(ValueError):
    """The executor asked for cannot run here."""


@dataclass(frozen=True)
class RayOptions:
    address: str = ""
    """A cluster to join (auto, ray://host:port); empty: a local Ray (or the one already up)."""
    max_concurrent: int = 0
    """Trials at once at most; 0: as many as the resources allow."""
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


def choose_executor(name: str, ray_address: str) -> str:
    """``auto`` is Ray where it is installed; a choice that cannot work is an ExecutorError."""
    has_ray = importlib.util.find_spec("ray") is not None
    if name == "auto":
        name = "ray" if has_ray or ray_address else "inprocess"
    if name == "ray" and not has_ray:
        raise ExecutorError("executor ray needs Ray, which is not installed here: run "
                            "`pip install ray` (or `pip install -e .[ray]` in this repository), "
                            "or use executor inprocess.")
    if name == "inprocess" and ray_address:
        raise ExecutorError(f"ray_address {ray_address!r} needs executor ray (or auto).")
    return name


def run_inprocess(tasks: list[TrialTask]) -> None:
    for task in tasks:
        run_trial(task)


def _tune_trial(config: dict, tasks: list[TrialTask]) -> None:
    run_trial(tasks[config["task"]])


def run_on_ray(tasks: list[TrialTask], options: RayOptions, name: str) -> None:
    """The tasks as the trials of a Tune experiment called ``name`` (the sweep's)."""
    import ray
    from mlflow import MlflowClient
    from ray import tune

    owned = not ray.is_initialized()
    if owned:
        ray.init(address=options.address or None)
    # Tune's own records of the trials: MLflow holds everything worth keeping.
    storage = tempfile.mkdtemp(prefix="augssl-sweep-tune-")
    try:
        trainable = tune.with_resources(tune.with_parameters(_tune_trial, tasks=tasks),
                                        {"cpu": options.cpus_per_trial,
                                         "gpu": options.gpus_per_trial})
        tuner = tune.Tuner(
            trainable, param_space={"task": tune.grid_search(list(range(len(tasks))))},
            tune_config=tune.TuneConfig(max_concurrent_trials=options.max_concurrent or None),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0))
        for result in tuner.fit():
            if result.error is None:
                continue
            # The worker died under the trial (a node lost, a kill): its run was left RUNNING.
            task = tasks[result.config["task"]]
            client = MlflowClient(task.tracking_uri)
            if client.get_run(task.run_id).info.status != "FINISHED":
                fail_run(client, task.run_id, "the Ray trial failed:", str(result.error))
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        if owned:
            ray.shutdown()
