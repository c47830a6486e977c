"""The MLflow side of a sweep: its run, one child run per trial, and what a rerun does with each.

A sweep is known by its experiment and name: running a spec again continues the same sweep run.
Each trial's child run carries the trial's key (a hash of its command line), so a rerun finds
it: FINISHED trials are skipped, trials whose run saved a checkpoint resume in that run, trials
never started run in the run made for them, and the others get a new child run (a failed
attempt without a checkpoint stays as it is, for its note).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from augssl.analysis.spec import SweepSpec, Trial
from augssl.engine.checkpoint import CHECKPOINT_DIR
from augssl.report.runs import all_pages

SWEEP_TAG = "augssl.sweep"
TRIAL_TAG = "augssl.sweep.trial"
ENTRY_TAG = "augssl.sweep.entry"
POINT_TAG = "augssl.sweep.grid"
SEED_TAG = "augssl.sweep.seed"
PARAMS_TAG = "augssl.sweep.params"
PARENT_TAG = "mlflow.parentRunId"  # what MLflow reads to nest a run under another
CONTINUED_TAG = "augssl.continued_in"  # as the entries tag an `mlflow run` launcher run


@dataclass(frozen=True)
class Planned:
    trial: Trial
    run_id: str
    resume: bool


def experiment_id(client, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def sweep_runs(client, experiment: str, name: str) -> list:
    """The sweep's own runs and its trials' runs, oldest first."""
    runs = all_pages(client.search_runs, [experiment],
                     filter_string=f"tags.`{SWEEP_TAG}` = '{name}'", max_results=1000)
    return sorted(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id))


def open_sweep_run(client, spec: SweepSpec, experiment: str, runs: list) -> str:
    """The run of the sweep, set RUNNING: the earlier one of this sweep when there is one, else
    the run `mlflow run` opened for this command (when in the sweep's experiment), else a new
    one."""
    earlier = [run for run in runs if TRIAL_TAG not in run.data.tags]
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if earlier:
        run_id = earlier[-1].info.run_id
        client.update_run(run_id, status="RUNNING")
    elif launcher and client.get_run(launcher).info.experiment_id == experiment:
        run_id = launcher
        client.set_tag(run_id, SWEEP_TAG, spec.name)
        client.update_run(run_id, name=spec.name)
    else:
        run_id = client.create_run(experiment, tags={SWEEP_TAG: spec.name},
                                   run_name=spec.name).info.run_id
    if launcher and launcher != run_id:
        client.set_tag(launcher, CONTINUED_TAG, run_id)
    return run_id


def latest_children(runs: list, sweep_run_id: str) -> dict[str, object]:
    """The latest child run of each trial key (``runs`` oldest first, as ``sweep_runs`` gives)."""
    return {run.data.tags[TRIAL_TAG]: run for run in runs
            if run.data.tags.get(PARENT_TAG) == sweep_run_id and TRIAL_TAG in run.data.tags}


def has_checkpoint(client, run_id: str) -> bool:
    names = (item.path.rsplit("/", 1)[-1] for item in client.list_artifacts(run_id, CHECKPOINT_DIR))
    return any(name.startswith("checkpoint_") and name.endswith(".pt") for name in names)


def new_child(client, experiment: str, sweep_run_id: str, name: str, trial: Trial) -> str:
    tags = {PARENT_TAG: sweep_run_id, SWEEP_TAG: name, TRIAL_TAG: trial.key,
            ENTRY_TAG: trial.entry, POINT_TAG: trial.point_text, SEED_TAG: str(trial.seed),
            PARAMS_TAG: trial.params}
    run_id = client.create_run(experiment, tags=tags, run_name=trial.label).info.run_id
    # Not started yet: a sweep interrupted before this trial leaves a run a rerun can use as is.
    client.update_run(run_id, status="SCHEDULED")
    return run_id


def plan(client, experiment: str, sweep_run_id: str, name: str, trials: list[Trial],
         latest: dict) -> tuple[list[Trial], list[Planned]]:
    """(trials FINISHED before, trials to run in which run)."""
    done, todo = [], []
    for trial in trials:
        run = latest.get(trial.key)
        status = run.info.status if run is not None else None
        if status == "FINISHED":
            done.append(trial)
        elif run is not None and has_checkpoint(client, run.info.run_id):
            todo.append(Planned(trial, run.info.run_id, resume=True))
        elif status == "SCHEDULED":
            todo.append(Planned(trial, run.info.run_id, resume=False))
        else:
            if status == "RUNNING":
                # interrupted before its first checkpoint: nothing to go on from
                client.set_terminated(run.info.run_id, "KILLED")
            todo.append(Planned(trial, new_child(client, experiment, sweep_run_id, name, trial),
                                resume=False))
    return done, todo
