"""Runs grouped by params, and the results table: per group the metric's mean ± std, n, the
mean wall time and the mean steps/s, in Markdown and CSV."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from augssl.report.errors import ReportError, closest_hint
from augssl.report.options import format_filter
from augssl.report.paired import Pairing, paired_differences
from augssl.report.runs import PARAM_PREFIX
from augssl.report.summaries import RunValue

UNSET_PARAM = "(unset)"
_FRACTION_NAME_HINTS = ("accuracy", "precision", "recall", "f1")


def _mean_or_none(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


@dataclass(frozen=True)
class GroupStats:
    """Aggregate of the runs sharing one combination of group-by param values."""

    key: tuple[str, ...]
    values: tuple[float, ...]
    wall_times_s: tuple[float, ...] = ()
    run_ids: tuple[str, ...] = ()
    """The group's runs, in the order of ``values``."""
    steps_per_s: tuple[float, ...] = ()
    """Of the runs that logged their iterations and wall time (see ``augssl.report.summaries``)."""
    pair_values: tuple[str, ...] = ()
    """The value of the pairing param of each run (see ``augssl.report.paired``)."""

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1); NaN for a single run, where it is undefined."""
        return statistics.stdev(self.values) if self.n > 1 else math.nan

    @property
    def mean_wall_time_s(self) -> float | None:
        return _mean_or_none(self.wall_times_s)

    @property
    def mean_steps_per_s(self) -> float | None:
        return _mean_or_none(self.steps_per_s)


@dataclass(frozen=True)
class Report:
    experiment_name: str
    experiment_id: str
    metric: str
    summary: str
    k: int
    group_by: tuple[str, ...]
    filters: Mapping[str, str]
    groups: tuple[GroupStats, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    """(run_id, reason) for matching runs that could not be summarised, e.g. a missing metric."""
    pairing: Pairing | None = None
    """Adds each group's differences to its baseline group, paired run by run."""


# ---------------------------------------------------------------------------
# Grouping


def group_runs(values: Sequence[RunValue], group_by: Sequence[str],
               paired_by: str | None = None) -> tuple[GroupStats, ...]:
    """Aggregate run values per combination of ``group_by`` params, sorted naturally by key;
    with ``paired_by``, each group keeps its runs' values of that param."""
    known = sorted({key for v in values for key in v.params})
    for key in group_by:
        if key not in known:
            raise ReportError(
                f"unknown group key {key!r}{closest_hint(key, known)}; "
                f"param keys of the matching runs: {', '.join(known)}"
            )
    runs = pd.DataFrame({
        "run_id": [v.run_id for v in values],
        "value": [v.value for v in values],
        "wall_time_s": [v.wall_time_s for v in values],
        "steps_per_s": [v.steps_per_s for v in values],
        "pair": [v.params.get(paired_by, UNSET_PARAM) if paired_by else "" for v in values],
        **{PARAM_PREFIX + name: [v.params.get(name, UNSET_PARAM) for v in values]
           for name in group_by},
    })
    if group_by:
        parts = runs.groupby([PARAM_PREFIX + name for name in group_by], sort=False)
    else:
        parts = [((), runs)] if len(runs) else []
    groups = (GroupStats(key=tuple(key),
                         values=tuple(part["value"].tolist()),
                         wall_times_s=tuple(part["wall_time_s"].dropna().tolist()),
                         run_ids=tuple(part["run_id"].tolist()),
                         steps_per_s=tuple(part["steps_per_s"].dropna().tolist()),
                         pair_values=tuple(part["pair"].tolist()) if paired_by else ())
              for key, part in parts)
    return tuple(sorted(groups, key=lambda group: natural_key(group.key)))


def natural_key(values: tuple[str, ...]) -> tuple:
    # Numbers sort numerically (250 < 1000) and before text, so label budgets read in order.
    def one(text: str):
        try:
            return (0, float(text), "")
        except ValueError:
            return (1, 0.0, text)

    return tuple(one(text) for text in values)


def group_label(key: tuple[str, ...]) -> str:
    """A group's (or a part of its key's) name in plots: its values, or "all runs"."""
    return ", ".join(key) if key else "all runs"


# ---------------------------------------------------------------------------
# Rendering


def is_fraction_metric_name(metric: str) -> bool:
    lowered = metric.lower()
    return any(hint in lowered for hint in _FRACTION_NAME_HINTS)


def use_percent(report: Report, percent: bool | None = None) -> bool:
    """Explicit choice wins; otherwise percent for accuracy-like names whose values lie in
    [0, 1]."""
    if percent is not None:
        return percent
    values = [v for g in report.groups for v in g.values if not math.isnan(v)]
    return is_fraction_metric_name(report.metric) and all(0.0 <= v <= 1.0 for v in values)


def summary_label(report: Report) -> str:
    return f"median_last_{report.k}" if report.summary == "median_last_k" else report.summary


def default_title(report: Report) -> str:
    return f"{report.experiment_name}: {report.metric} ({summary_label(report)})"


def shows_steps_per_s(report: Report) -> bool:
    """The steps/s column is shown when every run of the table has a steps/s."""
    return bool(report.groups) and all(len(g.steps_per_s) == g.n for g in report.groups)


def _format_mean_std(group: GroupStats, percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    number = "{:.2f}" if percent else "{:.4g}"
    mean = number.format(group.mean * scale)
    if group.n < 2:
        return mean
    return f"{mean} ± {number.format(group.std * scale)}"


def _format_differences(differences: tuple[float, ...] | None, percent: bool) -> str:
    if differences is None:
        return "baseline"
    if not differences:
        return ""
    scale = 100.0 if percent else 1.0
    number = "{:+.2f}" if percent else "{:+.4g}"
    text = number.format(statistics.fmean(differences) * scale)
    if len(differences) > 1:
        text += " ± " + number.format(statistics.stdev(differences) * scale).lstrip("+")
    return f"{text} ({len(differences)} pair{'s' if len(differences) > 1 else ''})"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown_table(report: Report, *, percent: bool | None = None,
                          wall_time: bool = True) -> str:
    """Markdown table with one row per group: group keys, metric mean ± std, n, mean wall time,
    mean steps/s."""
    as_percent = use_percent(report, percent)
    metric_header = f"{report.metric} ({summary_label(report)}{', %' if as_percent else ''})"
    show_wall = wall_time and any(g.mean_wall_time_s is not None for g in report.groups)
    show_speed = shows_steps_per_s(report)
    header = list(report.group_by or ("group",)) + [metric_header, "n"]
    if show_wall:
        header.append("wall time (s)")
    if show_speed:
        header.append("steps/s")
    if report.pairing:
        header.append(f"{report.pairing.label}{' (points)' if as_percent else ''}")
    rows = []
    for group in report.groups:
        row = list(group.key) if report.group_by else ["all runs"]
        row += [_format_mean_std(group, as_percent), str(group.n)]
        if show_wall:
            wall = group.mean_wall_time_s
            row.append("" if wall is None else f"{wall:.1f}")
        if show_speed:
            row.append(f"{group.mean_steps_per_s:.2f}")
        if report.pairing:
            row.append(_format_differences(paired_differences(report, group), as_percent))
        rows.append(row)
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def format_markdown_document(report: Report, *, title: str | None = None,
                             percent: bool | None = None, wall_time: bool = True,
                             image_name: str | None = "report.png",
                             curves_name: str | None = None) -> str:
    heading = title or default_title(report)
    skipped = (f" ({len(report.skipped)} matching runs could not be summarised)"
               if report.skipped else "")
    details = [f"- experiment: `{report.experiment_name}` (id {report.experiment_id})",
               f"- metric: `{report.metric}`, summary: `{summary_label(report)}`",
               f"- filter: `{format_filter(report.filters) or '(none)'}`",
               f"- runs: {sum(g.n for g in report.groups)}{skipped}"]
    parts = [f"# {heading}", "\n".join(details),
             format_markdown_table(report, percent=percent, wall_time=wall_time)]
    if image_name:
        parts.append(f"![{report.metric}]({image_name})")
    if curves_name:
        parts.append(f"![{report.metric} over steps]({curves_name})")
    return "\n\n".join(parts) + "\n"


def _differences_cells(report: Report, group: GroupStats) -> list[str]:
    differences = paired_differences(report, group)
    if not differences:
        return ["", ""]
    return [repr(statistics.fmean(differences)), ";".join(repr(d) for d in differences)]


def write_csv(report: Report, path: str | Path) -> Path:
    """CSV with raw (unscaled) values; std is empty when a group has a single run. The
    mean_steps_per_s column comes last, when the Markdown table shows steps/s."""
    path = Path(path)
    show_speed = shows_steps_per_s(report)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*report.group_by, "metric", "summary", "n", "mean", "std",
                         "mean_wall_time_s", "values"]
                        + (["mean_steps_per_s"] if show_speed else [])
                        + (["paired_mean_difference", "paired_differences"]
                           if report.pairing else []))
        for group in report.groups:
            wall = group.mean_wall_time_s
            writer.writerow([*group.key, report.metric, summary_label(report), group.n,
                             repr(group.mean), "" if group.n < 2 else repr(group.std),
                             "" if wall is None else repr(wall),
                             ";".join(repr(v) for v in group.values)]
                            + ([repr(group.mean_steps_per_s)] if show_speed else [])
                            + (_differences_cells(report, group) if report.pairing else []))
    return path
