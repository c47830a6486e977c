"""The results tables of a sweep, made by the `report` code over the sweep's FINISHED trials and
kept in the sweep run's artifacts (report/, or report/<name>/ for each of several reports)."""

from __future__ import annotations

import tempfile

from augssl.analysis.spec import ReportSpec
from augssl.report import (
    Report,
    ReportError,
    assemble_report,
    curve_data,
    format_filter,
    format_markdown_table,
    matches,
    runs_by_id,
    summarise_runs,
    write_report,
)

ARTIFACT_FOLDER = "report"


def build_sweep_report(client, experiment, trial_runs: list, spec: ReportSpec) -> Report:
    """``spec``'s table over ``trial_runs`` (the sweep's child runs) that are FINISHED and match
    its filter."""
    trials = runs_by_id(client, experiment.experiment_id, [run.info.run_id for run in trial_runs])
    runs = trials[(trials["status"] == "FINISHED") & matches(trials, spec.filters)]
    if runs.empty:
        where = f" matching filter {format_filter(spec.filters)!r}" if spec.filters else ""
        raise ReportError(f"no FINISHED trial{where} to report on.")
    values, skipped = summarise_runs(client, runs, spec.metric, spec.summary, spec.k)
    return assemble_report(experiment, values, skipped, metric=spec.metric,
                           summary=spec.summary, k=spec.k, group_by=spec.group_by,
                           filters=spec.filters, pairing=spec.pairing)


def publish(client, sweep_run_id: str, report: Report, spec: ReportSpec) -> str:
    """Log report.{md,csv,png} and curves.png to the sweep run; returns the Markdown table."""
    folder = f"{ARTIFACT_FOLDER}/{spec.name}" if spec.name else ARTIFACT_FOLDER
    with tempfile.TemporaryDirectory(prefix="augssl-report-") as directory:
        write_report(report, directory, title=spec.title or None, percent=spec.percent,
                     curves=curve_data(client, report))
        client.log_artifacts(sweep_run_id, directory, folder)
    return format_markdown_table(report, percent=spec.percent)
