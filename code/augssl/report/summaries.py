"""One run reduced to numbers: its metric by a summary mode, its wall time and its steps/s.

Runs are expected to log every config key as a param and per-evaluation metrics named
``<split>/<metric>`` with ``step`` = training iteration, plus ``wall_time_s`` once at the end.
'final' takes the latest value, which the run search returns; the other modes read the metric's
history (``MlflowClient.get_metric_history``).

steps/s is a run's training iterations divided by its wall time. The iterations are the latest
value of ``train/iterations``, which the training entries log beside ``wall_time_s`` when they
end (the trainer's iteration, see ``augssl.engine.outputs``), or else of ``train/network_steps``,
the same count as autodo runs logged it before. ``wall_time_s`` times the training loop, its
evaluations included, in the run's last session: for a run resumed from a checkpoint it leaves
out the time before the resume, so its steps/s reads high. Both numbers come with the run search,
so steps/s costs no history call; a run lacking either has none.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from augssl.report.errors import ReportError, closest_hint
from augssl.report.runs import METRIC_PREFIX, logged_names, params_of

SUMMARY_MODES = ("final", "best_validation", "median_last_k")
VALIDATION_SPLIT = "validation"
WALL_TIME_METRIC = "wall_time_s"
ITERATION_METRICS = ("train/iterations", "train/network_steps")
"""Where a run's count of training iterations is found, the first one it logs."""


@dataclass(frozen=True)
class RunValue:
    """One run reduced to a single number (and its wall time and iterations, when logged)."""

    run_id: str
    params: Mapping[str, str]
    value: float
    wall_time_s: float | None = None
    iterations: float | None = None

    @property
    def steps_per_s(self) -> float | None:
        """Training iterations per second of wall time (see the module's docstring)."""
        if self.iterations is None or self.wall_time_s is None or self.wall_time_s <= 0:
            return None
        return self.iterations / self.wall_time_s


def validation_counterpart(metric: str) -> str:
    """``test/X`` -> ``validation/X`` (any split is mapped); validation metrics map to
    themselves."""
    split, sep, name = metric.partition("/")
    if not sep or not name:
        raise ReportError(
            f"metric {metric!r} has no '<split>/<name>' form, so it has no validation counterpart "
            "for summary 'best_validation'; use e.g. 'test/accuracy' or another summary mode"
        )
    return f"{VALIDATION_SPLIT}/{name}"


def _ordered(history: Iterable) -> list:
    # Histories come back in store order; "last" means highest step, then latest timestamp.
    return sorted(history, key=lambda m: (m.step, m.timestamp))


def final_value(history: Iterable) -> float:
    ordered = _ordered(history)
    if not ordered:
        raise ReportError("cannot summarise an empty metric history")
    return float(ordered[-1].value)


def median_last_k(history: Iterable, k: int) -> float:
    """Median of the last ``k`` logged values (all of them when fewer were logged)."""
    _check_k(k)
    ordered = _ordered(history)
    if not ordered:
        raise ReportError("cannot summarise an empty metric history")
    return float(statistics.median(m.value for m in ordered[-k:]))


def _check_k(k: int) -> None:
    if k < 1:
        raise ReportError(f"k must be a positive number of evaluations, got {k}")


def best_validation_value(target_history: Iterable, validation_history: Iterable) -> float:
    """Target value at the step where validation was highest (earliest such step on ties).

    Higher validation values are taken as better, which holds for accuracy-like metrics.
    """
    # A diverged evaluation logs NaN, which would otherwise win or block every comparison.
    validation = [m for m in _ordered(validation_history) if not math.isnan(m.value)]
    if not validation:
        raise ReportError(
            "cannot pick a best validation step: the validation history is empty or all NaN")
    best = validation[0]
    for entry in validation[1:]:
        if entry.value > best.value:
            best = entry
    at_best_step = [m for m in _ordered(target_history) if m.step == best.step]
    if not at_best_step:
        raise ReportError(
            f"no value logged at step {best.step}, the best validation step; "
            "log the metric at every evaluation step, or use summary 'final' or 'median_last_k'"
        )
    return float(at_best_step[-1].value)


def summarise_run(client, run_id: str, latest: float, metric: str, summary: str,
                  k: int = 5) -> float:
    """Reduce ``metric`` of one run, whose latest value is ``latest``, with the chosen summary
    mode.

    'final' is ``latest``, needing no history call; the other modes fetch one history, or two
    for 'best_validation' of a non-validation metric.
    """
    if summary == "final":
        return float(latest)
    history = client.get_metric_history(run_id, metric)
    if summary == "median_last_k":
        return median_last_k(history, k)
    if summary == "best_validation":
        validation_metric = validation_counterpart(metric)
        if validation_metric == metric:
            return max(float(m.value) for m in history)
        validation_history = client.get_metric_history(run_id, validation_metric)
        return best_validation_value(history, validation_history)
    raise _unknown_summary(summary)


def _unknown_summary(summary: str) -> ReportError:
    return ReportError(f"unknown summary {summary!r}; expected one of {', '.join(SUMMARY_MODES)}")


def summarise_runs(client, runs: pd.DataFrame, metric: str, summary: str, k: int = 5
                   ) -> tuple[list[RunValue], list[tuple[str, str]]]:
    """Summarise each run (a row of the runs' DataFrame); runs that cannot be summarised are
    returned as (run_id, reason)."""
    if summary not in SUMMARY_MODES:
        raise _unknown_summary(summary)
    if summary == "median_last_k":
        _check_k(k)
    required = [metric]
    if summary == "best_validation" and validation_counterpart(metric) != metric:
        required.append(validation_counterpart(metric))
    _check_metrics_exist(runs, required)

    values, skipped = [], []
    for run in runs.to_dict("records"):
        run_id = run["run_id"]
        missing = [name for name in required if not _logs(client, run, name)]
        if missing:
            skipped.append((run_id, f"does not log {', '.join(missing)}"))
            continue
        try:
            value = summarise_run(client, run_id, run[METRIC_PREFIX + metric], metric, summary, k)
        except ReportError as error:
            skipped.append((run_id, str(error)))
            continue
        iterations = next((count for name in ITERATION_METRICS
                           if (count := _latest(run, name)) is not None), None)
        values.append(RunValue(run_id, params_of(run), value,
                               _latest(run, WALL_TIME_METRIC), iterations))
    if not values:
        reasons = "; ".join(f"{run_id}: {reason}" for run_id, reason in skipped)
        raise ReportError(f"no run could be summarised with {summary!r} for {metric!r}: {reasons}")
    return values, skipped


def _latest(run: Mapping, metric: str) -> float | None:
    value = run.get(METRIC_PREFIX + metric)
    return None if value is None or math.isnan(value) else float(value)


def _logs(client, run: Mapping, metric: str) -> bool:
    """Whether ``run`` logged ``metric``. The runs' DataFrame holds NaN both for a metric the run
    never logged and for one whose latest value is NaN; only the history tells them apart."""
    value = run.get(METRIC_PREFIX + metric)
    if value is None:
        return False
    return not math.isnan(value) or bool(client.get_metric_history(run["run_id"], metric))


def _check_metrics_exist(runs: pd.DataFrame, required: Sequence[str]) -> None:
    present = logged_names(runs, METRIC_PREFIX)
    for name in required:
        if name not in present:
            raise ReportError(
                f"metric {name!r} was not logged by any of the {len(runs)} matching runs"
                f"{closest_hint(name, present)}. Metrics present: {', '.join(present) or '(none)'}"
            )
