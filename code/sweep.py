r"""Run the trials of a sweep spec as child runs of one MLflow run, then make its results tables.

    python code/sweep.py experiments/sweeps/fashion_mnist_train.toml
    python code/sweep.py fashion_mnist_uda --executor inprocess    # a spec in experiments/sweeps/
    python code/sweep.py fashion_mnist_train --ray-address auto --cpus-per-trial 4 \
        --gpus-per-trial 1

Running a spec again skips its FINISHED trials and resumes the others. The spec is checked whole
before anything runs: a problem in it exits with code 2.
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import argparse
import math
import shlex
import sys
from functools import partial

from augssl.analysis.entries import ENTRIES
from augssl.analysis.executors import (
    EXECUTORS,
    ExecutorError,
    RayOptions,
    choose_executor,
    run_inprocess,
    run_on_ray,
)
from augssl.analysis.runner import run_sweep
from augssl.analysis.spec import SpecError, check_trials, find_spec_file, load_spec
from augssl.config import whole_number
from augssl.engine.store import ready_store
from augssl.report import ReportError, format_markdown_table


def resources(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="spec file, or the name of one in experiments/sweeps/")
    parser.add_argument("--executor", default="auto", choices=EXECUTORS,
                        help="ray: Ray Tune trials; inprocess: one trial after the other here; "
                             "auto: ray where Ray is installed")
    parser.add_argument("--ray-address", default="",
                        help="Ray cluster to join (auto, ray://host:port); empty: a local Ray")
    parser.add_argument("--max-concurrent", type=whole_number(0), default=0,
                        help="Ray: trials at once at most; 0: as many as the resources allow")
    parser.add_argument("--cpus-per-trial", type=resources, default=1.0,
                        help="Ray: CPUs a trial takes")
    parser.add_argument("--gpus-per-trial", type=resources, default=0.0,
                        help="Ray: GPUs a trial takes")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the spec and list its trials, run nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = load_spec(find_spec_file(args.spec))
        trials = check_trials(spec)
        executor = choose_executor(args.executor, args.ray_address)
    except (SpecError, ExecutorError) as error:
        print(f"sweep: error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        for trial in trials:
            print(shlex.join(["python", f"code/{ENTRIES[trial.entry].script}", trial.dataset,
                              trial.network, "--params", trial.params]))
        return 0
    execute = run_inprocess
    if executor == "ray":
        options = RayOptions(args.ray_address, args.max_concurrent, args.cpus_per_trial,
                             args.gpus_per_trial)
        execute = partial(run_on_ray, options=options, name=spec.name)
    ready_store()
    result = run_sweep(spec, trials, execute)
    _print_trials(spec, trials, result)
    return _print_reports(result)


def _print_trials(spec, trials, result) -> None:
    failed = [trial for trial in trials if result.runs[trial.key].info.status != "FINISHED"]
    for trial in failed:
        run = result.runs[trial.key]
        print(f"sweep: {trial.label}: {run.info.status} (run {run.info.run_id}; its note says "
              "why)", file=sys.stderr)
    print(f"sweep {spec.name}: {len(trials) - len(failed)} of {len(trials)} trials FINISHED "
          f"({len(result.skipped)} before this command); sweep run {result.run_id}",
          file=sys.stderr)


def _print_reports(result) -> int:
    """Print each table in Markdown; 1 when one could not be made."""
    code = 0
    for spec, report in result.reports:
        heading = f"report {spec.name}" if spec.name else "report"
        if isinstance(report, ReportError):
            print(f"sweep: {heading}: {report}", file=sys.stderr)
            code = 1
            continue
        for run_id, reason in report.skipped:
            print(f"sweep: {heading}: skipped run {run_id}: {reason}", file=sys.stderr)
        if len(result.reports) > 1:
            print(f"\n## {spec.name}\n")
        print(format_markdown_table(report, percent=spec.percent))
    return code

if __name__ == "__main__":
    sys.exit(main())
