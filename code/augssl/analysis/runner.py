"""A sweep from start to end: its MLflow run, the trials still to run, the executor, the tables.

Trials run in stages: those that take another trial's run id (``{name}`` in their params) run
once that trial has ended, with its id in their params, or end FAILED without running when it
did not finish. The sweep run ends FINISHED whatever its trials did (each trial's run says how it
went); it ends KILLED or FAILED only when the sweep itself is interrupted or breaks, and a rerun
goes on from there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from augssl.analysis.runs import (
    Planned,
    experiment_id,
    latest_children,
    open_sweep_run,
    plan,
    sweep_runs,
)
from augssl.analysis.spec import ReportSpec, SweepSpec, Trial
from augssl.analysis.sweep_report import build_sweep_report, publish
from augssl.analysis.trial import TrialTask, fail_run
from augssl.report import Report, ReportError


@dataclass(frozen=True)
class SweepResult:
    run_id: str
    runs: dict[str, object]
    """The run of each trial, by trial key."""
    skipped: tuple[Trial, ...]
    """Trials FINISHED before this command."""
    reports: tuple[tuple[ReportSpec, Report | ReportError], ...]


def run_sweep(spec: SweepSpec, trials: list[Trial],
              execute: Callable[[list[TrialTask]], None]) -> SweepResult:
    import mlflow
    from mlflow import MlflowClient

    tracking_uri = mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri)
    experiment = experiment_id(client, spec.experiment)
    runs = sweep_runs(client, experiment, spec.name)
    sweep_run = open_sweep_run(client, spec, experiment, runs)
    try:
        client.log_artifact(sweep_run, str(spec.source), "sweep")
        done, todo = plan(client, experiment, sweep_run, spec.name, trials,
                          latest_children(runs, sweep_run))
        print(f"sweep {spec.name}: {len(trials)} trials, {len(done)} FINISHED before, "
              f"{len(todo)} to run (sweep run {sweep_run})", file=sys.stderr, flush=True)
        for stage in stages(todo):
            latest = latest_children(sweep_runs(client, experiment, spec.name), sweep_run)
            tasks = []
            for item in stage:
                params = with_run_ids(client, item, latest, trials)
                if params is not None:
                    tasks.append(TrialTask(item.trial, item.run_id, item.resume, tracking_uri,
                                           os.getcwd(), params))
            if tasks:
                execute(tasks)
        latest = latest_children(sweep_runs(client, experiment, spec.name), sweep_run)
        trial_runs = {trial.key: latest[trial.key] for trial in trials}
        statuses = [run.info.status for run in trial_runs.values()]
        for name, value in (("trials", len(trials)),
                            ("trials_finished", statuses.count("FINISHED")),
                            ("trials_failed", statuses.count("FAILED"))):
            client.log_metric(sweep_run, name, value)
        reports = tuple((report, _report(client, experiment, sweep_run,
                                         list(trial_runs.values()), report))
                        for report in spec.reports)
    except BaseException as error:
        client.set_terminated(sweep_run, "KILLED" if isinstance(error, KeyboardInterrupt)
                              else "FAILED")
        raise
    client.set_terminated(sweep_run, "FINISHED")
    return SweepResult(sweep_run, trial_runs, tuple(done), reports)


def stages(todo: list[Planned]) -> list[list[Planned]]:
    """``todo`` in the order it can run: a trial after the trials it takes the run ids of (those
    come from earlier lines, so one pass in line order finds every trial's stage)."""
    depth: dict[str, int] = {}
    for item in sorted(todo, key=lambda item: item.trial.line):
        depth[item.trial.key] = 1 + max((depth.get(key, -1) for _, key in item.trial.references),
                                        default=-1)
    count = max(depth.values(), default=-1) + 1
    return [[item for item in todo if depth[item.trial.key] == stage] for stage in range(count)]


def with_run_ids(client, item: Planned, latest: dict, trials: list[Trial]) -> str | None:
    """The trial's params with the run ids it takes; None, its run marked FAILED with the
    reason, when a trial it takes the run id of did not finish."""
    run_ids = {}
    for name, key in item.trial.references:
        run = latest.get(key)
        if run is None or run.info.status != "FINISHED":
            status = run.info.status if run is not None else "not run"
            where = f"run {run.info.run_id}" if run is not None else "no run"
            label = next(trial.label for trial in trials if trial.key == key)
            fail_run(client, item.run_id,
                     f"not run: it takes the run id of line '{name}' ({label}; {where}), "
                     f"which ended {status}. Rerun the sweep once that trial finishes.")
            print(f"sweep: {item.trial.label}: FAILED (run {item.run_id}): {{{name}}} did not "
                  "finish", file=sys.stderr, flush=True)
            return None
        run_ids[key] = run.info.run_id
    return item.trial.with_run_ids(run_ids)


def _report(client, experiment: str, sweep_run: str, trial_runs: list,
            spec: ReportSpec) -> Report | ReportError:
    try:
        report = build_sweep_report(client, client.get_experiment(experiment), trial_runs, spec)
    except ReportError as error:
        return error
    publish(client, sweep_run, report, spec)
    return report
