"""The curves of a report: for each group, its runs' metric history averaged step by step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from augssl.report.tables import Report, group_label


@dataclass(frozen=True)
class Curve:
    """A group's metric against the step: mean and sample std (ddof=1; NaN for a single run)
    over its runs at each step all of them logged, in step order."""

    label: str
    steps: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    runs: int


def mean_curve(histories: Sequence[Iterable], label: str = "") -> Curve:
    """The curve of runs with these metric histories (lists of MLflow ``Metric``).

    Steps that some run did not log are left out. A run that logged a step twice (as one resumed
    from a checkpoint does) counts its latest value there. A NaN value makes that step's mean NaN
    rather than leaving the run out.
    """
    points = pd.DataFrame([(run, m.step, m.timestamp, m.value)
                           for run, history in enumerate(histories) for m in history],
                          columns=["run", "step", "timestamp", "value"])
    latest = (points.sort_values(["run", "step", "timestamp"])
              .drop_duplicates(["run", "step"], keep="last"))
    runs_per_step = latest.groupby("step")["run"].size()
    shared = runs_per_step.index[runs_per_step == len(histories)]
    table = latest.pivot(index="step", columns="run", values="value").loc[shared]
    return Curve(label=label,
                 steps=tuple(int(step) for step in shared),
                 mean=tuple(table.mean(axis=1, skipna=False).tolist()),
                 std=tuple(table.std(axis=1, ddof=1, skipna=False).tolist()),
                 runs=len(histories))


def curve_data(client, report: Report) -> tuple[Curve, ...]:
    """One curve of ``report.metric`` per group of ``report``, labelled as in its plots; fetches
    the metric's history of every run (``MlflowClient.get_metric_history``)."""
    return tuple(mean_curve([client.get_metric_history(run_id, report.metric)
                             for run_id in group.run_ids], group_label(group.key))
                 for group in report.groups)
