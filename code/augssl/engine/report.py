"""Results tables from MLflow runs: collect, filter, group, summarise, render.

Runs are expected to log every config key as a param and per-evaluation metrics
named ``<split>/<metric>`` with ``step`` = training iteration, plus ``wall_time_s``
once at the end. A metric is reduced to one number per run (see ``SUMMARY_MODES``),
then runs sharing the same values of the group-by params are aggregated.
"""

from __future__ import annotations

import csv
import difflib
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

SUMMARY_MODES = ("final", "best_validation", "median_last_k")
VALIDATION_SPLIT = "validation"
WALL_TIME_METRIC = "wall_time_s"
UNSET_PARAM = "(unset)"
_FRACTION_NAME_HINTS = ("accuracy", "precision", "recall", "f1")


class ReportError(ValueError):
    """A report cannot be built from the given experiment, filter, metric or grouping."""


@dataclass(frozen=True)
class RunValue:
    """One run reduced to a single number."""

    run_id: str
    params: Mapping[str, str]
    value: float
    wall_time_s: float | None = None


@dataclass(frozen=True)
class GroupStats:
    """Aggregate of the runs sharing one combination of group-by param values."""

    key: tuple[str, ...]
    values: tuple[float, ...]
    wall_times_s: tuple[float, ...] = ()

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
        return statistics.fmean(self.wall_times_s) if self.wall_times_s else None


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


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    csv: Path
    png: Path


# ---------------------------------------------------------------------------
# Argument parsing helpers (shared by the CLI and MLproject entry, where "" means unset)


def parse_filter(text: str | None) -> dict[str, str]:
    """Parse ``"key=value;key2=value2"`` into a dict; empty or None means no filter."""
    filters: dict[str, str] = {}
    for clause in (text or "").split(";"):
        clause = clause.strip()
        if not clause:
            continue
        key, sep, value = clause.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ReportError(
                f"invalid filter clause {clause!r}: expected 'key=value' clauses separated by ';', "
                "e.g. 'entry=train;dataset=FashionMNIST'"
            )
        if key in filters and filters[key] != value:
            raise ReportError(
                f"filter key {key!r} is given twice ({filters[key]!r} and {value!r}); "
                "a run has one value per param, so keep only one clause for it"
            )
        filters[key] = value
    return filters


def parse_group_by(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Parse ``"policy,num_labelled_samples"`` (or a list) into a tuple of keys; empty means no
    grouping."""
    items = text.split(",") if isinstance(text, str) else (text or ())
    keys = tuple(item.strip() for item in items if item.strip())
    duplicates = sorted(key for key, count in Counter(keys).items() if count > 1)
    if duplicates:
        raise ReportError(f"group-by keys repeated: {', '.join(duplicates)}; list each key once")
    return keys


def format_filter(filters: Mapping[str, str]) -> str:
    return ";".join(f"{key}={value}" for key, value in filters.items())


# ---------------------------------------------------------------------------
# Per-run summaries from metric histories


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
    if k < 1:
        raise ReportError(f"k must be a positive number of evaluations, got {k}")
    ordered = _ordered(history)
    if not ordered:
        raise ReportError("cannot summarise an empty metric history")
    return float(statistics.median(m.value for m in ordered[-k:]))


def best_validation_value(target_history: Iterable, validation_history: Iterable) -> float:
    """Target value at the step where validation was highest (earliest such step on ties).

    Higher validation values are taken as better, which holds for accuracy-like metrics.
    """
    # A diverged evaluation logs NaN, which would otherwise win or block every comparison.
    validation = [m for m in _ordered(validation_history) if not math.isnan(m.value)]
    if not validation:
        raise ReportError("cannot pick a best validation step: the validation history is empty "
                          "or all NaN")
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


def summarise_run(client, run, metric: str, summary: str, k: int = 5) -> float:
    """Reduce ``metric`` of one run to a number with the chosen summary mode.

    'final' reads the run's latest value, needing no history call; the other modes
    fetch one history, or two for 'best_validation' of a non-validation metric.
    """
    if summary == "final":
        return float(run.data.metrics[metric])
    history = client.get_metric_history(run.info.run_id, metric)
    if summary == "median_last_k":
        return median_last_k(history, k)
    if summary == "best_validation":
        validation_metric = validation_counterpart(metric)
        if validation_metric == metric:
            return max(float(m.value) for m in history)
        validation_history = client.get_metric_history(run.info.run_id, validation_metric)
        return best_validation_value(history, validation_history)
    raise ReportError(f"unknown summary {summary!r}; expected one of {', '.join(SUMMARY_MODES)}")


# ---------------------------------------------------------------------------
# Collecting runs


def make_client(tracking_uri: str | None = None):
    """An MLflow client for ``tracking_uri`` (MLflow's default when None or empty).

    Local stores must already exist: MLflow would otherwise silently create an empty one
    and every experiment would look unknown.
    """
    # Imported here: MLflow takes seconds to import and the pure helpers above do not need it.
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri or mlflow.get_tracking_uri()
    local_path = _local_store_path(uri)
    if local_path is not None and not local_path.exists():
        raise ReportError(
            f"no MLflow tracking store at {local_path} (tracking URI {uri!r}); "
            "run from the directory holding your runs or pass --tracking-uri"
        )
    return MlflowClient(tracking_uri=uri)


def _local_store_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri:
        return Path(uri)
    return None


def resolve_experiment(client, experiment: str):
    """Find an experiment by name, falling back to id; unknown ones list the existing names."""
    if not experiment:
        raise ReportError("no experiment given; pass an experiment name or id")
    found = client.get_experiment_by_name(experiment)
    if found is None and experiment.isdigit():
        from mlflow.exceptions import MlflowException

        try:
            found = client.get_experiment(experiment)
        except MlflowException:
            found = None
    if found is None:
        names = sorted(e.name for e in _all_pages(client.search_experiments))
        close = difflib.get_close_matches(experiment, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ReportError(
            f"unknown experiment {experiment!r} in tracking store {client.tracking_uri!r}.{hint} "
            f"Existing experiments: {', '.join(names) or '(none)'}"
        )
    return found


def _all_pages(search, *args, **kwargs) -> list:
    items, token = [], None
    while True:
        page = search(*args, page_token=token, **kwargs)
        items.extend(page)
        token = page.token
        if not token:
            return items


def collect_runs(client, experiment, filters: Mapping[str, str] | None = None,
                 include_unfinished: bool = False) -> list:
    """Runs of an MLflow experiment entity that are FINISHED (unless ``include_unfinished``) and
    match ``filters``.

    Filtering is exact string equality on params, done here rather than in an MLflow
    filter string so values need no quoting and a miss can be explained.
    """
    filters = dict(filters or {})
    all_runs = _all_pages(client.search_runs, [experiment.experiment_id], max_results=1000)
    # Oldest first, so per-group values (e.g. in the CSV) follow launch order.
    all_runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
    eligible = [r for r in all_runs if include_unfinished or r.info.status == "FINISHED"]
    if not eligible:
        states = Counter(r.info.status for r in all_runs)
        detail = ", ".join(f"{count} {status}" for status, count in sorted(states.items()))
        hint = " (pass --include-unfinished to use them)" if all_runs else ""
        raise ReportError(
            f"experiment {experiment.name!r} has no FINISHED runs; found "
            f"{detail or 'no runs at all'}{hint}"
        )
    matching = [r for r in eligible if _matches(r.data.params, filters)]
    if not matching:
        raise ReportError(_no_match_message(eligible, filters))
    return matching


def _matches(params: Mapping[str, str], filters: Mapping[str, str]) -> bool:
    return all(params.get(key) == value for key, value in filters.items())


def _no_match_message(runs: Sequence, filters: Mapping[str, str]) -> str:
    lines = [f"no run matches filter {format_filter(filters)!r} among {len(runs)} candidate runs."]
    for key, wanted in filters.items():
        seen = sorted({r.data.params[key] for r in runs if key in r.data.params})
        if not seen:
            lines.append(f"  {key!r} is not a param of any run"
                         f"{_closest_hint(key, _param_keys(runs))}.")
        elif wanted not in seen:
            lines.append(f"  {key}={wanted!r} never occurs; values present: {', '.join(seen)}.")
    lines.append("Check the filter clauses ('key=value' joined by ';', exact string match).")
    return "\n".join(lines)


def _param_keys(runs: Sequence) -> list[str]:
    return sorted({key for r in runs for key in r.data.params})


def _closest_hint(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------
# Building the report


def summarise_runs(client, runs: Sequence, metric: str, summary: str, k: int = 5
                   ) -> tuple[list[RunValue], list[tuple[str, str]]]:
    """Summarise each run; runs that cannot be summarised are returned as (run_id, reason)."""
    if summary not in SUMMARY_MODES:
        raise ReportError(f"unknown summary {summary!r}; expected one of "
                          f"{', '.join(SUMMARY_MODES)}")
    if summary == "median_last_k" and k < 1:
        raise ReportError(f"k must be a positive number of evaluations, got {k}")
    required = [metric]
    if summary == "best_validation" and validation_counterpart(metric) != metric:
        required.append(validation_counterpart(metric))
    _check_metrics_exist(runs, required)

    values, skipped = [], []
    for run in runs:
        missing = [name for name in required if name not in run.data.metrics]
        if missing:
            skipped.append((run.info.run_id, f"does not log {', '.join(missing)}"))
            continue
        try:
            value = summarise_run(client, run, metric, summary, k)
        except ReportError as error:
            skipped.append((run.info.run_id, str(error)))
            continue
        wall_time = run.data.metrics.get(WALL_TIME_METRIC)
        values.append(RunValue(run.info.run_id, dict(run.data.params), value,
                               None if wall_time is None else float(wall_time)))
    if not values:
        reasons = "; ".join(f"{run_id}: {reason}" for run_id, reason in skipped)
        raise ReportError(f"no run could be summarised with {summary!r} for {metric!r}: {reasons}")
    return values, skipped


def _check_metrics_exist(runs: Sequence, required: Sequence[str]) -> None:
    present = sorted({name for r in runs for name in r.data.metrics})
    for name in required:
        if name not in present:
            raise ReportError(
                f"metric {name!r} was not logged by any of the {len(runs)} matching runs"
                f"{_closest_hint(name, present)}. Metrics present: {', '.join(present) or '(none)'}"
            )


def group_runs(values: Sequence[RunValue], group_by: Sequence[str]) -> tuple[GroupStats, ...]:
    """Aggregate run values per combination of ``group_by`` params, sorted naturally by key."""
    known = sorted({key for v in values for key in v.params})
    for key in group_by:
        if key not in known:
            raise ReportError(
                f"unknown group key {key!r}{_closest_hint(key, known)}; "
                f"param keys of the matching runs: {', '.join(known)}"
            )
    buckets: dict[tuple[str, ...], list[RunValue]] = {}
    for value in values:
        key = tuple(value.params.get(name, UNSET_PARAM) for name in group_by)
        buckets.setdefault(key, []).append(value)
    return tuple(
        GroupStats(key=key,
                   values=tuple(v.value for v in members),
                   wall_times_s=tuple(v.wall_time_s for v in members if v.wall_time_s is not None))
        for key, members in sorted(buckets.items(), key=lambda item: _natural_key(item[0]))
    )


def _natural_key(values: tuple[str, ...]) -> tuple:
    # Numbers sort numerically (250 < 1000) and before text, so label budgets read in order.
    def one(text: str):
        try:
            return (0, float(text), "")
        except ValueError:
            return (1, 0.0, text)

    return tuple(one(text) for text in values)


def build_report(experiment: str, *, tracking_uri: str | None = None, metric: str = "test/accuracy",
                 summary: str = "final", k: int = 5, group_by: str | Sequence[str] | None = (),
                 filters: str | Mapping[str, str] | None = None,
                 include_unfinished: bool = False) -> Report:
    """Collect, filter, summarise and group the runs of ``experiment`` (name or id)."""
    group_keys = parse_group_by(group_by)
    filter_map = (parse_filter(filters) if isinstance(filters, str) or filters is None
                  else dict(filters))
    client = make_client(tracking_uri)
    found = resolve_experiment(client, experiment)
    runs = collect_runs(client, found, filter_map, include_unfinished)
    values, skipped = summarise_runs(client, runs, metric, summary, k)
    return Report(
        experiment_name=found.name,
        experiment_id=found.experiment_id,
        metric=metric,
        summary=summary,
        k=k,
        group_by=group_keys,
        filters=filter_map,
        groups=group_runs(values, group_keys),
        skipped=tuple(skipped),
    )


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


def _format_mean_std(group: GroupStats, percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    number = "{:.2f}" if percent else "{:.4g}"
    mean = number.format(group.mean * scale)
    if group.n < 2:
        return mean
    return f"{mean} ± {number.format(group.std * scale)}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown_table(report: Report, *, percent: bool | None = None,
                          wall_time: bool = True) -> str:
    """Markdown table with one row per group: group keys, metric mean ± std, n, mean wall time."""
    as_percent = use_percent(report, percent)
    metric_header = f"{report.metric} ({summary_label(report)}{', %' if as_percent else ''})"
    show_wall = wall_time and any(g.mean_wall_time_s is not None for g in report.groups)
    header = list(report.group_by or ("group",)) + [metric_header, "n"]
    if show_wall:
        header.append("wall time (s)")
    rows = []
    for group in report.groups:
        row = list(group.key) if report.group_by else ["all runs"]
        row += [_format_mean_std(group, as_percent), str(group.n)]
        if show_wall:
            wall = group.mean_wall_time_s
            row.append("" if wall is None else f"{wall:.1f}")
        rows.append(row)
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def format_markdown_document(report: Report, *, title: str | None = None,
                             percent: bool | None = None, wall_time: bool = True,
                             image_name: str | None = "report.png") -> str:
    heading = title or default_title(report)
    details = [f"- experiment: `{report.experiment_name}` (id {report.experiment_id})",
               f"- metric: `{report.metric}`, summary: `{summary_label(report)}`",
               f"- filter: `{format_filter(report.filters) or '(none)'}`",
               f"- runs: {sum(g.n for g in report.groups)}"
               + (f" ({len(report.skipped)} matching runs could not be summarised)"
                  if report.skipped else "")]
    parts = [f"# {heading}", "\n".join(details),
             format_markdown_table(report, percent=percent, wall_time=wall_time)]
    if image_name:
        parts.append(f"![{report.metric}]({image_name})")
    return "\n\n".join(parts) + "\n"


def default_title(report: Report) -> str:
    return f"{report.experiment_name}: {report.metric} ({summary_label(report)})"


def write_csv(report: Report, path: str | Path) -> Path:
    """CSV with raw (unscaled) values; std is empty when a group has a single run."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*report.group_by, "metric", "summary", "n", "mean", "std",
                         "mean_wall_time_s", "values"])
        for group in report.groups:
            wall = group.mean_wall_time_s
            writer.writerow([*group.key, report.metric, summary_label(report), group.n,
                             repr(group.mean), "" if group.n < 2 else repr(group.std),
                             "" if wall is None else repr(wall),
                             ";".join(repr(v) for v in group.values)])
    return path


@dataclass(frozen=True)
class BarLayout:
    """Groups arranged as a grouped bar chart: x categories, and one bar series per colour."""

    x_name: str
    x_labels: tuple[str, ...]
    series_name: str
    series_labels: tuple[str, ...]
    cells: Mapping[tuple[str, str], GroupStats]
    """(x_label, series_label) -> group; combinations without runs are absent."""


def bar_layout(report: Report) -> BarLayout:
    """With two or more group keys the first key becomes the series (one colour per value)
    and the remaining keys the x categories, e.g. one colour per policy over label budgets."""
    split = len(report.group_by) >= 2
    x_names = report.group_by[1:] if split else report.group_by
    x_keys: dict[tuple[str, ...], str] = {}
    series: list[str] = []
    cells: dict[tuple[str, str], GroupStats] = {}
    for group in report.groups:
        series_label = group.key[0] if split else ""
        x_key = group.key[1:] if split else group.key
        x_label = ", ".join(x_key) if x_key else "all runs"
        x_keys.setdefault(x_key, x_label)
        if series_label not in series:
            series.append(series_label)
        cells[(x_label, series_label)] = group
    return BarLayout(
        x_name=", ".join(x_names),
        x_labels=tuple(x_keys[key] for key in sorted(x_keys, key=_natural_key)),
        series_name=report.group_by[0] if split else "",
        series_labels=tuple(series),
        cells=cells,
    )


def plot_report(report: Report, path: str | Path, *, title: str | None = None,
                percent: bool | None = None) -> Path:
    """Bar chart of group means with sample-std error bars, saved as PNG."""
    # Drawing on an explicit Agg canvas keeps pyplot's global backend state untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    as_percent = use_percent(report, percent)
    scale = 100.0 if as_percent else 1.0
    layout = bar_layout(report)
    series_count = len(layout.series_labels)
    width = 0.8 / series_count
    bar_count = len(layout.x_labels) * series_count
    figure = Figure(figsize=(min(20.0, max(5.0, 2.5 + 0.6 * bar_count)), 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, series_label in enumerate(layout.series_labels):
        positions, means, errors = [], [], []
        for x_index, x_label in enumerate(layout.x_labels):
            group = layout.cells.get((x_label, series_label))
            if group is None:
                continue
            positions.append(x_index + (index - (series_count - 1) / 2) * width)
            means.append(group.mean * scale)
            errors.append(0.0 if group.n < 2 else group.std * scale)
        axes.bar(positions, means, width=width, yerr=errors, capsize=4, label=series_label or None)
    crowded = sum(len(label) for label in layout.x_labels) > 60
    axes.set_xticks(range(len(layout.x_labels)))
    axes.set_xticklabels(layout.x_labels, rotation=30 if crowded else 0,
                         ha="right" if crowded else "center")
    axes.set_xlabel(layout.x_name)
    axes.set_ylabel(f"{report.metric} ({summary_label(report)}){' [%]' if as_percent else ''}")
    axes.set_title(title or default_title(report))
    if series_count > 1:
        # Outside the axes so the legend never hides bars.
        axes.legend(title=layout.series_name, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=120)
    return path


def write_report(report: Report, output_dir: str | Path, *, title: str | None = None,
                 percent: bool | None = None, wall_time: bool = True) -> ReportFiles:
    """Write report.md, report.csv and report.png into ``output_dir`` (created if needed)."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(markdown=directory / "report.md", csv=directory / "report.csv",
                        png=directory / "report.png")
    files.markdown.write_text(format_markdown_document(
        report, title=title, percent=percent, wall_time=wall_time, image_name=files.png.name))
    write_csv(report, files.csv)
    plot_report(report, files.png, title=title, percent=percent)
    return files
