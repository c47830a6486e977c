"""Results-table reports built from a synthetic MLflow tracking store."""

from __future__ import annotations

import csv
import itertools
import math
import subprocess
import sys
from pathlib import Path

import pytest

from augssl import report as rp

mlflow = pytest.importorskip("mlflow")
from mlflow.entities import Metric, Param  # noqa: E402

CODE_DIR = Path(__file__).resolve().parents[2] / "code"
EXPERIMENT = "ssl-report"
ONLY_FAILED = "only-failed"

STEPS = (100, 200, 300, 400, 500, 600)
# Best validation is at step 300 where test is 0.80, while the test maximum (0.90) is at 500,
# so picking the wrong step changes the result. Hand-derived per-run summaries before the seed
# offset:
#   final 0.65, best_validation 0.80, median of last 5 = 0.70, of last 4 = 0.75, of all 6 = 0.675.
BASE_TEST = (0.50, 0.60, 0.80, 0.70, 0.90, 0.65)
BASE_VALIDATION = (0.40, 0.55, 0.85, 0.60, 0.70, 0.80)
# Per group: (shift, per-seed step, wall time base). Seeds 0,1,2 give offsets shift + step*seed,
# so group means are shift + step and sample stds are exactly step.
GROUPS = {"autoaugment": (0.00, 0.01, 100.0), "randaugment": (0.05, 0.02, 200.0)}
SEEDS = (0, 1, 2)
# Distinct start times keep the store's run order, and so the CSV value order, deterministic.
_START_TIMES = itertools.count(1)


def _log_run(client, experiment_id, params, test, validation=None, wall_time=None,
             status="FINISHED"):
    run = client.create_run(experiment_id, start_time=next(_START_TIMES))
    metrics = [Metric("test/accuracy", v, 1_000 + i, step)
               for i, (step, v) in enumerate(zip(STEPS, test))]
    if validation is not None:
        metrics += [Metric("validation/accuracy", v, 1_000 + i, step)
                    for i, (step, v) in enumerate(zip(STEPS, validation))]
    if wall_time is not None:
        metrics.append(Metric("wall_time_s", wall_time, 2_000, 0))
    client.log_batch(run.info.run_id, metrics=metrics,
                     params=[Param(key, str(value)) for key, value in params.items()])
    client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(EXPERIMENT,
                                             artifact_location=(root / "artifacts").as_uri())
    for policy, (shift, per_seed, wall_base) in GROUPS.items():
        for seed in SEEDS:
            offset = shift + per_seed * seed
            _log_run(client, experiment_id,
                     {"entry": "train", "dataset": "FashionMNIST", "policy": policy, "seed": seed,
                      "num_labelled_samples": 250},
                     test=[v + offset for v in BASE_TEST],
                     validation=[v + offset / 2 for v in BASE_VALIDATION],
                     wall_time=wall_base + 10.0 * seed)
    # Would drag the autoaugment mean to ~0 if FAILED runs leaked in.
    _log_run(client, experiment_id,
             {"entry": "train", "dataset": "FashionMNIST", "policy": "autoaugment", "seed": 3,
              "num_labelled_samples": 250},
             test=[0.0] * 6, validation=[0.0] * 6, status="FAILED")
    # Another entry on another dataset, logging no validation metric.
    _log_run(client, experiment_id,
             {"entry": "main_uda", "dataset": "CIFAR10", "policy": "autoaugment", "seed": 0},
             test=[0.30] * 6)
    failed_id = client.create_experiment(ONLY_FAILED,
                                         artifact_location=(root / "artifacts2").as_uri())
    _log_run(client, failed_id, {"entry": "train", "policy": "x"}, test=[0.4] * 6, status="FAILED")
    return uri


def _group(report, key):
    return next(g for g in report.groups if g.key == key)


def _train_report(store, **kwargs):
    kwargs.setdefault("group_by", "policy")
    return rp.build_report(EXPERIMENT, tracking_uri=store, filters="entry=train", **kwargs)


@pytest.mark.parametrize("summary, k, base", [
    ("final", 5, 0.65),
    ("best_validation", 5, 0.80),
    ("median_last_k", 5, 0.70),
    ("median_last_k", 4, 0.75),
    ("median_last_k", 10, 0.675),
])
def test_summary_modes_give_exact_group_mean_and_std(store, summary, k, base):
    report = _train_report(store, summary=summary, k=k)
    assert [g.key for g in report.groups] == [("autoaugment",), ("randaugment",)]
    for policy, (shift, per_seed, _) in GROUPS.items():
        group = _group(report, (policy,))
        assert group.n == 3
        assert group.mean == pytest.approx(base + shift + per_seed, abs=1e-12)
        assert group.std == pytest.approx(per_seed, abs=1e-12)


def test_best_validation_of_a_validation_metric_is_its_maximum(store):
    report = _train_report(store, metric="validation/accuracy", summary="best_validation")
    group = _group(report, ("randaugment",))
    # validation offsets are half the test offsets: (0.05 + 0.02 * seed) / 2
    assert group.mean == pytest.approx(0.85 + 0.035, abs=1e-12)
    assert group.std == pytest.approx(0.01, abs=1e-12)


def test_wall_time_is_averaged_per_group(store):
    report = _train_report(store)
    assert _group(report, ("autoaugment",)).mean_wall_time_s == pytest.approx(110.0)
    assert _group(report, ("randaugment",)).mean_wall_time_s == pytest.approx(210.0)


def test_failed_runs_are_excluded_unless_asked_for(store):
    finished = _train_report(store)
    assert _group(finished, ("autoaugment",)).n == 3
    everything = _train_report(store, include_unfinished=True)
    with_failed = _group(everything, ("autoaugment",))
    assert with_failed.n == 4
    assert with_failed.mean == pytest.approx((0.65 + 0.66 + 0.67 + 0.0) / 4)


def test_filter_and_grouping_select_runs(store):
    unfiltered = rp.build_report(EXPERIMENT, tracking_uri=store, group_by="entry,dataset")
    assert [(g.key, g.n) for g in unfiltered.groups] == [
        (("main_uda", "CIFAR10"), 1), (("train", "FashionMNIST"), 6)]
    cifar = rp.build_report(EXPERIMENT, tracking_uri=store, filters={"dataset": "CIFAR10"})
    (only,) = cifar.groups
    assert (only.key, only.n, only.mean) == ((), 1, pytest.approx(0.30))
    assert math.isnan(only.std)
    by_seed = _train_report(store, group_by=["policy", "seed"])
    assert len(by_seed.groups) == 6 and all(g.n == 1 for g in by_seed.groups)


def test_runs_without_the_validation_metric_are_skipped_for_best_validation(store):
    report = rp.build_report(EXPERIMENT, tracking_uri=store, summary="best_validation",
                             group_by="entry")
    assert [g.key for g in report.groups] == [("train",)]
    ((_, reason),) = report.skipped
    assert "validation/accuracy" in reason


def test_history_calls_stay_proportional_to_runs(store, monkeypatch):
    calls = []
    original = mlflow.MlflowClient.get_metric_history

    def counting(self, run_id, key):
        calls.append(key)
        return original(self, run_id, key)

    monkeypatch.setattr(mlflow.MlflowClient, "get_metric_history", counting)
    _train_report(store, summary="final")
    assert calls == []
    _train_report(store, summary="best_validation")
    assert sorted(set(calls)) == ["test/accuracy", "validation/accuracy"] and len(calls) == 12
    calls.clear()
    _train_report(store, summary="median_last_k")
    assert calls == ["test/accuracy"] * 6


def test_experiment_can_be_given_by_id(store):
    client = mlflow.MlflowClient(tracking_uri=store)
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    report = rp.build_report(experiment_id, tracking_uri=store, filters="entry=train")
    assert report.experiment_name == EXPERIMENT and report.groups[0].n == 6


# --- pure helpers -------------------------------------------------------------


def _history(pairs):
    return [Metric("m", value, step, step) for step, value in pairs]


def test_history_helpers_sort_by_step_and_break_validation_ties_early():
    shuffled = _history([(300, 0.3), (100, 0.1), (200, 0.2)])
    assert rp.final_value(shuffled) == 0.3
    assert rp.median_last_k(shuffled, 2) == pytest.approx(0.25)
    with pytest.raises(rp.ReportError, match="positive"):
        rp.median_last_k(shuffled, 0)
    validation = _history([(100, 0.5), (200, 0.9), (300, 0.9)])
    target = _history([(300, 0.7), (100, 0.1), (200, 0.6)])
    assert rp.best_validation_value(target, validation) == 0.6
    assert rp.best_validation_value(target, _history([(100, math.nan), (300, 0.2)])) == 0.7
    with pytest.raises(rp.ReportError, match="step 200"):
        rp.best_validation_value(_history([(100, 0.1)]), validation)


def test_validation_counterpart_maps_any_split():
    assert rp.validation_counterpart("test/f1_macro") == "validation/f1_macro"
    assert rp.validation_counterpart("validation/accuracy") == "validation/accuracy"
    with pytest.raises(rp.ReportError, match="<split>/<name>"):
        rp.validation_counterpart("accuracy")


def test_parse_filter_and_group_by_treat_empty_as_unset():
    assert rp.parse_filter("") == {} and rp.parse_filter(None) == {}
    assert rp.parse_filter(" entry=train ; expr=a=b;") == {"entry": "train", "expr": "a=b"}
    assert rp.parse_group_by("") == ()
    assert rp.parse_group_by("policy, num_labelled_samples") == ("policy", "num_labelled_samples")
    with pytest.raises(rp.ReportError, match="key=value"):
        rp.parse_filter("entry")
    with pytest.raises(rp.ReportError, match="twice"):
        rp.parse_filter("seed=1;seed=2")


def test_groups_sort_numbers_numerically():
    values = [rp.RunValue(str(i), {"n": n}, 0.5)
              for i, n in enumerate(["4000", "250", "1000", "all"])]
    assert [g.key for g in rp.group_runs(values, ["n"])] == [
        ("250",), ("1000",), ("4000",), ("all",)]


def _manual_report(group_by, groups, metric="test/accuracy"):
    return rp.Report(experiment_name="e", experiment_id="1", metric=metric, summary="final", k=5,
                     group_by=tuple(group_by), filters={}, groups=tuple(groups))


def test_bar_layout_uses_first_key_as_series():
    groups = [rp.GroupStats(key=(policy, n), values=(0.5,))
              for policy in ("aa", "ra") for n in ("4000", "250")]
    layout = rp.bar_layout(_manual_report(["policy", "n"], groups))
    assert (layout.x_name, layout.x_labels) == ("n", ("250", "4000"))
    assert (layout.series_name, layout.series_labels) == ("policy", ("aa", "ra"))
    assert layout.cells[("4000", "ra")].key == ("ra", "4000")
    single = rp.bar_layout(_manual_report([], [rp.GroupStats(key=(), values=(0.5,))]))
    assert (single.x_labels, single.series_labels) == (("all runs",), ("",))


def test_percent_is_automatic_only_for_fractions_with_accuracy_like_names():
    fractions = [rp.GroupStats(key=(), values=(0.5, 0.7))]
    assert rp.use_percent(_manual_report([], fractions, "test/f1_macro"))
    assert not rp.use_percent(_manual_report([], fractions, "test/loss"))
    assert rp.use_percent(_manual_report([], fractions, "test/loss"), percent=True)
    already_percent = [rp.GroupStats(key=(), values=(55.0, 70.0))]
    assert not rp.use_percent(_manual_report([], already_percent, "test/accuracy"))


# --- rendering ------------------------------------------------------------------


def test_markdown_table_is_exact(store):
    table = rp.format_markdown_table(_train_report(store))
    assert table.splitlines() == [
        "| policy | test/accuracy (final, %) | n | wall time (s) |",
        "|---|---|---|---|",
        "| autoaugment | 66.00 ± 1.00 | 3 | 110.0 |",
        "| randaugment | 72.00 ± 2.00 | 3 | 210.0 |",
    ]


def test_markdown_without_percent_grouping_or_std_for_single_runs(store):
    report = rp.build_report(EXPERIMENT, tracking_uri=store, filters="dataset=CIFAR10")
    table = rp.format_markdown_table(report, percent=False)
    assert table.splitlines()[-1] == "| all runs | 0.3 | 1 |"
    wall = _train_report(store, metric="wall_time_s")
    assert "| autoaugment | 110 ± 10 | 3 | 110.0 |" in rp.format_markdown_table(wall)


def test_written_files_hold_table_csv_and_png(store, tmp_path):
    report = _train_report(store, summary="best_validation")
    files = rp.write_report(report, tmp_path / "out", title="FashionMNIST 250 labels")
    document = files.markdown.read_text()
    assert document.startswith("# FashionMNIST 250 labels\n")
    assert "| autoaugment | 81.00 ± 1.00 | 3 | 110.0 |" in document
    assert "filter: `entry=train`" in document and "![test/accuracy](report.png)" in document
    with files.csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["policy"] for r in rows] == ["autoaugment", "randaugment"]
    assert float(rows[1]["mean"]) == pytest.approx(0.87)
    assert float(rows[1]["std"]) == pytest.approx(0.02)
    assert rows[0]["n"] == "3" and rows[0]["summary"] == "best_validation"
    assert [float(v) for v in rows[0]["values"].split(";")] == pytest.approx([0.80, 0.81, 0.82])
    png = files.png.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000


# --- errors -----------------------------------------------------------------------


def test_unknown_experiment_lists_existing_names(store):
    with pytest.raises(rp.ReportError, match="ssl-reprt") as error:
        rp.build_report("ssl-reprt", tracking_uri=store)
    assert "Did you mean 'ssl-report'" in str(error.value)
    assert ONLY_FAILED in str(error.value)


def test_a_report_reads_its_store_without_touching_mlflows_tracking_uri(store, tmp_path,
                                                                        monkeypatch):
    elsewhere = f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    mlflow.set_tracking_uri(elsewhere)
    try:
        report = rp.build_report(EXPERIMENT, tracking_uri=store, filters="entry=train")
        assert report.groups and mlflow.get_tracking_uri() == elsewhere
        with pytest.raises(rp.ReportError, match="Did you mean 'ssl-report'"):
            rp.build_report("ssl-reprt", tracking_uri=store)
        assert mlflow.get_tracking_uri() == elsewhere
    finally:
        mlflow.set_tracking_uri(None)


def test_missing_store_is_reported_instead_of_created(tmp_path):
    missing = tmp_path / "nowhere.db"
    with pytest.raises(rp.ReportError, match="no MLflow tracking store"):
        rp.build_report(EXPERIMENT, tracking_uri=f"sqlite:///{missing}")
    assert not missing.exists()


def test_no_matching_runs_names_the_filter_and_values_present(store):
    with pytest.raises(rp.ReportError) as error:
        rp.build_report(EXPERIMENT, tracking_uri=store, filters="entry=train;dataset=SVHN;polcy=aa")
    message = str(error.value)
    assert "entry=train;dataset=SVHN;polcy=aa" in message
    assert "values present: CIFAR10, FashionMNIST" in message
    assert "did you mean 'policy'" in message


def test_experiment_with_only_failed_runs_suggests_including_them(store):
    with pytest.raises(rp.ReportError, match="only-failed.*1 FAILED.*--include-unfinished"):
        rp.build_report(ONLY_FAILED, tracking_uri=store)


def test_missing_metric_lists_logged_metrics(store):
    with pytest.raises(rp.ReportError) as error:
        _train_report(store, metric="test/acuracy")
    message = str(error.value)
    assert "'test/acuracy' was not logged" in message and "did you mean 'test/accuracy'" in message
    assert "test/accuracy, validation/accuracy, wall_time_s" in message


def test_unknown_group_key_suggests_closest(store):
    with pytest.raises(rp.ReportError) as error:
        _train_report(store, group_by="polcy")
    message = str(error.value)
    assert "did you mean 'policy'" in message and "num_labelled_samples" in message


# --- entry script -------------------------------------------------------------------


@pytest.fixture()
def report_main():
    sys.path.insert(0, str(CODE_DIR))
    try:
        import report as entry
    finally:
        sys.path.remove(str(CODE_DIR))
    return entry.main


def test_cli_treats_empty_strings_as_unset_and_uses_default_dir(store, report_main, tmp_path,
                                                                  monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # Stands in for MLflow's default (env var or set_tracking_uri) without touching global state.
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: store)
    code = report_main(["--experiment", EXPERIMENT, "--group-by", "", "--metric", "test/accuracy",
                        "--summary", "final", "--k", "5", "--filter", "", "--output-dir", ""])
    assert code == 0
    out = capsys.readouterr().out
    assert "| all runs | 63.43 ± 15.10 | 7 | 160.0 |" in out  # 6 train runs + the CIFAR10 run
    assert sorted(p.name for p in (tmp_path / "reports" / EXPERIMENT).iterdir()) == [
        "curves.png", "report.csv", "report.md", "report.png"]


def test_cli_reports_errors_with_exit_code_2(store, report_main, capsys, tmp_path):
    code = report_main(["--experiment", EXPERIMENT, "--tracking-uri", store, "--group-by", "polcy",
                        "--output-dir", str(tmp_path)])
    assert code == 2
    assert "report: error: unknown group key 'polcy'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad_k:
        report_main(["--experiment", EXPERIMENT, "--tracking-uri", store, "--k", "2.5"])
    assert bad_k.value.code == 2 and "a whole number of evaluations >= 1" in capsys.readouterr().err


def test_entry_script_runs_standalone(store, tmp_path):
    result = subprocess.run(
        [sys.executable, str(CODE_DIR / "report.py"), "--experiment", EXPERIMENT,
         "--tracking-uri", store,
         "--group-by", "policy", "--summary", "median_last_k", "--k", "4.0",
         "--filter", "entry=train;dataset=FashionMNIST", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "| randaugment | 82.00 ± 2.00 | 3 | 210.0 |" in result.stdout
    assert (tmp_path / "report.png").exists()
