"""Results tables from MLflow runs: collect, filter, summarise, group, render.

``runs`` finds the runs (``mlflow.search_runs``), ``summaries`` reduces each to a number,
``tables`` groups them and renders Markdown and CSV, ``curves`` averages the groups' metric
histories over steps, ``plots`` draws the bar chart and the curves, ``build`` ties them together.
"""

from augssl.report.build import ReportFiles, assemble_report, build_report, write_report
from augssl.report.curves import Curve, curve_data, mean_curve
from augssl.report.errors import ReportError
from augssl.report.options import format_filter, parse_filter, parse_group_by
from augssl.report.paired import (
    Pairing,
    check_baseline_found,
    check_pairing,
    paired_differences,
)
from augssl.report.plots import (
    BarLayout,
    bar_layout,
    curves_figure,
    plot_curves,
    plot_report,
)
from augssl.report.runs import (
    collect_runs,
    make_client,
    matches,
    resolve_experiment,
    runs_by_id,
)
from augssl.report.summaries import (
    ITERATION_METRICS,
    SUMMARY_MODES,
    VALIDATION_SPLIT,
    WALL_TIME_METRIC,
    RunValue,
    best_validation_value,
    final_value,
    median_last_k,
    summarise_run,
    summarise_runs,
    validation_counterpart,
)
from augssl.report.tables import (
    UNSET_PARAM,
    GroupStats,
    Report,
    default_title,
    format_markdown_document,
    format_markdown_table,
    group_runs,
    is_fraction_metric_name,
    summary_label,
    use_percent,
    write_csv,
)

__all__ = [
    "BarLayout", "Curve", "GroupStats", "ITERATION_METRICS", "Pairing", "Report", "ReportError",
    "ReportFiles", "RunValue", "SUMMARY_MODES", "UNSET_PARAM", "VALIDATION_SPLIT",
    "WALL_TIME_METRIC", "assemble_report", "bar_layout", "best_validation_value", "build_report",
    "check_baseline_found", "check_pairing", "collect_runs", "curve_data", "curves_figure",
    "default_title", "final_value", "format_filter", "format_markdown_document",
    "format_markdown_table", "group_runs", "is_fraction_metric_name", "make_client", "matches",
    "mean_curve", "median_last_k", "paired_differences", "parse_filter", "parse_group_by",
    "plot_curves", "plot_report", "resolve_experiment", "runs_by_id", "summarise_run",
    "summarise_runs", "summary_label", "use_percent", "validation_counterpart", "write_csv",
    "write_report",
]
