"""The runs a report is made of: the MLflow client, the experiment and the runs themselves.

Runs come as the DataFrame of ``mlflow.search_runs``: one row a run, with ``run_id``,
``status``, ``start_time``, a ``params.<key>`` column a param and a ``metrics.<name>`` column a
metric (its latest value), empty (None or NaN) where a run does not have it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from augssl.report.errors import ReportError, closest, closest_hint
from augssl.report.options import format_filter

PARAM_PREFIX = "params."
METRIC_PREFIX = "metrics."


def make_client(tracking_uri: str | None = None):
    """An MLflow client for ``tracking_uri`` (MLflow's default when None or empty).

    Local stores must already exist: MLflow would otherwise silently create an empty one
    and every experiment would look unknown.
    """
    # Imported here: MLflow takes seconds to import and the option parsing does not need it.
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
        names = sorted(e.name for e in all_pages(client.search_experiments))
        close = closest(experiment, names)
        hint = f" Did you mean {close!r}?" if close else ""
        raise ReportError(
            f"unknown experiment {experiment!r} in tracking store {client.tracking_uri!r}.{hint} "
            f"Existing experiments: {', '.join(names) or '(none)'}"
        )
    return found


def all_pages(search, *args, **kwargs) -> list:
    """Every result of an MLflow client search, page after page."""
    found, token = [], None
    while True:
        page = search(*args, page_token=token, **kwargs)
        found.extend(page)
        token = page.token
        if not token:
            return found


_RUN_COLUMNS = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]


def _row(run) -> dict:
    info, data = run.info, run.data
    return {"run_id": info.run_id, "experiment_id": info.experiment_id, "status": info.status,
            "artifact_uri": info.artifact_uri, "start_time": info.start_time,
            "end_time": info.end_time,
            **{METRIC_PREFIX + key: value for key, value in data.metrics.items()},
            **{PARAM_PREFIX + key: value for key, value in data.params.items()},
            **{f"tags.{key}": value for key, value in data.tags.items()}}


def search_runs(client, experiment_id: str, filter_string: str = "") -> pd.DataFrame:
    """The runs of an experiment (those matching ``filter_string``, an MLflow search filter),
    oldest first, so that the values of a group (e.g. in the CSV) follow launch order; in the
    layout of ``mlflow.search_runs``, read through ``client`` alone."""
    rows = [_row(run) for run in all_pages(client.search_runs, [experiment_id],
                                            filter_string=filter_string, max_results=1000)]
    # every row starts with a run's own columns; with no run the frame still has them
    runs = pd.DataFrame(rows) if rows else pd.DataFrame(columns=_RUN_COLUMNS)
    for column in ("start_time", "end_time"):
        runs[column] = pd.to_datetime(runs[column], unit="ms", utc=True)
    return runs.sort_values(["start_time", "run_id"], na_position="first").reset_index(drop=True)


def runs_by_id(client, experiment_id: str, run_ids: Sequence[str]) -> pd.DataFrame:
    """The runs of an experiment with the given ids, oldest first."""
    if not run_ids:  # "IN ()" is no filter MLflow takes; this one matches no run
        return search_runs(client, experiment_id, "attributes.run_id = ''")
    listed = ", ".join(f"'{run_id}'" for run_id in run_ids)
    return search_runs(client, experiment_id, f"attributes.run_id IN ({listed})")


def collect_runs(client, experiment, filters: Mapping[str, str] | None = None,
                 include_unfinished: bool = False) -> pd.DataFrame:
    """Runs of an MLflow experiment entity that are FINISHED (unless ``include_unfinished``)
    and match ``filters``.

    Filtering is exact string equality on params, done here rather than in an MLflow
    filter string so values need no quoting and a miss can be explained.
    """
    filters = dict(filters or {})
    runs = search_runs(client, experiment.experiment_id)
    eligible = runs if include_unfinished else runs[runs["status"] == "FINISHED"]
    if eligible.empty:
        states = sorted(runs["status"].value_counts().items())
        detail = ", ".join(f"{count} {status}" for status, count in states)
        hint = " (pass --include-unfinished to use them)" if len(runs) else ""
        raise ReportError(
            f"experiment {experiment.name!r} has no FINISHED runs; "
            f"found {detail or 'no runs at all'}{hint}"
        )
    matching = eligible[matches(eligible, filters)]
    if matching.empty:
        raise ReportError(_no_match_message(eligible, filters))
    return matching


def matches(runs: pd.DataFrame, filters: Mapping[str, str]) -> pd.Series:
    """Which of ``runs`` have every param of ``filters`` at its value."""
    mask = pd.Series(True, index=runs.index)
    for key, value in filters.items():
        column = PARAM_PREFIX + key
        mask &= runs[column].eq(value) if column in runs else False
    return mask


def _no_match_message(runs: pd.DataFrame, filters: Mapping[str, str]) -> str:
    lines = [f"no run matches filter {format_filter(filters)!r} among {len(runs)} candidate runs."]
    for key, wanted in filters.items():
        seen = param_values(runs, key)
        if not seen:
            hint = closest_hint(key, logged_names(runs, PARAM_PREFIX))
            lines.append(f"  {key!r} is not a param of any run{hint}.")
        elif wanted not in seen:
            lines.append(f"  {key}={wanted!r} never occurs; values present: {', '.join(seen)}.")
    lines.append("Check the filter clauses ('key=value' joined by ';', exact string match).")
    return "\n".join(lines)


def param_values(runs: pd.DataFrame, key: str) -> list[str]:
    column = PARAM_PREFIX + key
    return sorted(runs[column].dropna().unique()) if column in runs else []


def logged_names(runs: pd.DataFrame, prefix: str) -> list[str]:
    """The params (``PARAM_PREFIX``) or metrics (``METRIC_PREFIX``) one of ``runs`` at least
    has."""
    return sorted(column[len(prefix):] for column in runs.columns
                  if column.startswith(prefix) and runs[column].notna().any())


def params_of(run: Mapping) -> dict[str, str]:
    """The params of one run, a row of the runs' DataFrame as a mapping."""
    return {column[len(PARAM_PREFIX):]: value for column, value in run.items()
            if column.startswith(PARAM_PREFIX) and pd.notna(value)}
