"""A report from start to end: collect, filter, summarise and group the runs; write the files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from augssl.report.curves import Curve
from augssl.report.options import parse_filter, parse_group_by
from augssl.report.paired import Pairing, check_baseline_found, check_pairing
from augssl.report.plots import plot_curves, plot_report
from augssl.report.runs import collect_runs, make_client, resolve_experiment
from augssl.report.summaries import RunValue, summarise_runs
from augssl.report.tables import Report, format_markdown_document, group_runs, write_csv


def build_report(experiment: str, *, tracking_uri: str | None = None,
                 metric: str = "test/accuracy", summary: str = "final", k: int = 5,
                 group_by: str | Sequence[str] | None = (),
                 filters: str | Mapping[str, str] | None = None,
                 include_unfinished: bool = False, pairing: Pairing | None = None) -> Report:
    """Collect, filter, summarise and group the runs of ``experiment`` (name or id); with
    ``pairing``, each group also gets its differences to the baseline group."""
    group_keys = parse_group_by(group_by)
    if pairing is not None:
        check_pairing(pairing, group_keys)
    filter_map = (parse_filter(filters) if isinstance(filters, str) or filters is None
                  else dict(filters))
    client = make_client(tracking_uri)
    found = resolve_experiment(client, experiment)
    runs = collect_runs(client, found, filter_map, include_unfinished)
    values, skipped = summarise_runs(client, runs, metric, summary, k)
    return assemble_report(found, values, skipped, metric=metric, summary=summary, k=k,
                           group_by=group_keys, filters=filter_map, pairing=pairing)


def assemble_report(experiment, values: Sequence[RunValue], skipped: Sequence[tuple[str, str]],
                    *, metric: str, summary: str, k: int, group_by: tuple[str, ...],
                    filters: Mapping[str, str], pairing: Pairing | None = None) -> Report:
    """The report of summarised runs: grouped, with the baseline of ``pairing`` checked."""
    report = Report(
        experiment_name=experiment.name,
        experiment_id=experiment.experiment_id,
        metric=metric,
        summary=summary,
        k=k,
        group_by=group_by,
        filters=filters,
        groups=group_runs(values, group_by, paired_by=pairing.paired_by if pairing else None),
        skipped=tuple(skipped),
        pairing=pairing,
    )
    if pairing is not None:
        check_baseline_found(report)
    return report


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    csv: Path
    png: Path
    curves: Path | None = None
    """curves.png, when curves with steps were given."""


def write_report(report: Report, output_dir: str | Path, *, title: str | None = None,
                 percent: bool | None = None, wall_time: bool = True,
                 curves: Sequence[Curve] | None = None) -> ReportFiles:
    """Write report.md, report.csv and report.png into ``output_dir`` (created if needed), and
    curves.png when ``curves`` (see ``curve_data``) has a curve with steps."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    drawn = curves is not None and any(curve.steps for curve in curves)
    files = ReportFiles(markdown=directory / "report.md", csv=directory / "report.csv",
                        png=directory / "report.png",
                        curves=directory / "curves.png" if drawn else None)
    files.markdown.write_text(format_markdown_document(
        report, title=title, percent=percent, wall_time=wall_time, image_name=files.png.name,
        curves_name=files.curves.name if files.curves else None))
    write_csv(report, files.csv)
    plot_report(report, files.png, title=title, percent=percent)
    if files.curves:
        plot_curves(report, curves, files.curves, title=title, percent=percent)
    return files
