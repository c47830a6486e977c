r"""Summarise the MLflow runs of an experiment into a results table, CSV, bar plot and curves.

Example:
    python code/report.py --experiment ssl-fashionmnist --group-by policy,num_labelled_samples \
        --metric test/accuracy --summary best_validation --filter "entry=train;dataset=FashionMNIST"

Empty strings for --group-by, --filter, --tracking-uri, --output-dir and --title mean
"not set", so the MLproject entry can pass every option unconditionally.
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import argparse
import re
import sys
from pathlib import Path

from augssl.config import whole_number
from augssl.report import (
    SUMMARY_MODES,
    Pairing,
    ReportError,
    build_report,
    curve_data,
    format_markdown_table,
    make_client,
    parse_filter,
    write_report,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True, help="MLflow experiment name or id")
    parser.add_argument("--tracking-uri", default="",
                        help="MLflow tracking URI (default: MLflow's default)")
    parser.add_argument("--group-by", default="",
                        help="comma-separated param keys, e.g. policy,num_labelled_samples")
    parser.add_argument("--metric", default="test/accuracy", help="metric name, e.g. test/accuracy")
    parser.add_argument("--summary", default="final", choices=SUMMARY_MODES,
                        help="how one run's metric history becomes one number")
    parser.add_argument("--k", type=whole_number(1, "a whole number of evaluations"), default=5,
                        help="number of last evaluations for median_last_k")
    parser.add_argument("--filter", default="",
                        help="param equality clauses, e.g. 'entry=train;dataset=FashionMNIST'")
    parser.add_argument("--include-unfinished", action="store_true",
                        help="also use runs that are not FINISHED")
    parser.add_argument("--output-dir", default="",
                        help="where to write report.{md,csv,png} and curves.png "
                        "(default: ./reports/<experiment name>)")
    parser.add_argument("--title", default="", help="title of the Markdown document and plot")
    parser.add_argument("--percent", action=argparse.BooleanOptionalAction, default=None,
                        help="show values in percent (default: on for "
                             "accuracy/precision/recall/f1 in [0, 1])")
    parser.add_argument("--wall-time", action=argparse.BooleanOptionalAction, default=True,
                        help="add the mean wall_time_s column when runs log it")
    parser.add_argument("--baseline", default="",
                        help="add each group's difference to this group, paired run by run "
                        "(e.g. 'policy=none': group-by values naming one group)")
    parser.add_argument("--paired-by", default="seed",
                        help="with --baseline: the param that pairs runs (seed; autodo: run)")
    parser.add_argument("--curves", action=argparse.BooleanOptionalAction, default=True,
                        help="also draw curves.png: each group's metric against the step, "
                        "mean ± std over its runs")
    return parser


def default_output_dir(experiment_name: str) -> Path:
    # Experiment names may hold path separators or spaces; keep the folder name portable.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment_name).strip("._") or "experiment"
    return Path("reports") / safe


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = build_report(
            args.experiment,
            tracking_uri=args.tracking_uri or None,
            metric=args.metric,
            summary=args.summary,
            k=args.k,
            group_by=args.group_by,
            filters=args.filter,
            include_unfinished=args.include_unfinished,
            pairing=(Pairing(parse_filter(args.baseline), args.paired_by) if args.baseline
                     else None),
        )
    except ReportError as error:
        print(f"report: error: {error}", file=sys.stderr)
        return 2
    for run_id, reason in report.skipped:
        print(f"report: warning: skipped run {run_id}: {reason}", file=sys.stderr)
    output_dir = (Path(args.output_dir) if args.output_dir
                  else default_output_dir(report.experiment_name))
    title = args.title or None
    curves = curve_data(make_client(args.tracking_uri or None), report) if args.curves else None
    files = write_report(report, output_dir, title=title, percent=args.percent,
                         wall_time=args.wall_time, curves=curves)
    print(format_markdown_table(report, percent=args.percent, wall_time=args.wall_time))
    written = [files.markdown, files.csv, files.png] + ([files.curves] if files.curves else [])
    print(f"report: wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
