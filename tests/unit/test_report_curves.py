"""The curves picture and the steps/s column of reports, from a synthetic MLflow store."""

from __future__ import annotations

import csv
import itertools
import math
import os

import pytest

import report as report_entry  # code/report.py, on the path by tests/conftest.py
from augssl import report as rp

mlflow = pytest.importorskip("mlflow")
from mlflow.entities import Metric, Param  # noqa: E402

EXPERIMENT = "curves"
_START_TIMES = itertools.count(1)

# test/accuracy as (step, value, timestamp). The third autoaugment run stops at step 200, so the
# group shares steps 100 and 200 only; the second logs step 200 twice, as a run resumed from a
# checkpoint does, and its later value (0.8) is the one that counts.
AUTOAUGMENT = (
    [(100, 0.5, 1), (200, 0.6, 2), (300, 0.7, 3)],
    [(100, 0.7, 1), (200, 0.1, 2), (200, 0.8, 5), (300, 0.9, 6)],
    [(100, 0.6, 1), (200, 0.7, 2)],
)
RANDAUGMENT = ([(100, 0.4, 1), (200, 0.5, 2), (300, 0.6, 3)],)
# (iterations logged as train/iterations, wall_time_s): 5, 3 and 4 steps/s, mean 4
AUTOAUGMENT_TIMES = ((300, 60.0), (300, 100.0), (200, 50.0))


def _log_run(client, experiment_id, params, history, metrics=()):
    run = client.create_run(experiment_id, start_time=next(_START_TIMES))
    logged = [Metric("test/accuracy", value, timestamp, step) for step, value, timestamp in history]
    logged += [Metric(key, value, 10, step) for key, value, step in metrics]
    client.log_batch(run.info.run_id, metrics=logged,
                     params=[Param(key, value) for key, value in params.items()])
    client.set_terminated(run.info.run_id, status="FINISHED")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(EXPERIMENT,
                                             artifact_location=(root / "artifacts").as_uri())
    train = {"entry": "train", "policy": "autoaugment"}
    for history, (iterations, wall) in zip(AUTOAUGMENT, AUTOAUGMENT_TIMES):
        _log_run(client, experiment_id, train, history,
                 [("train/iterations", iterations, iterations), ("wall_time_s", wall, iterations)])
    # autodo runs count their iterations as train/network_steps: 300 in 150 s, 2 steps/s
    _log_run(client, experiment_id, {"entry": "train", "policy": "randaugment"}, RANDAUGMENT[0],
             [("train/network_steps", 300, 300), ("wall_time_s", 150.0, 300)])
    # A run with a wall time but no iteration count: no steps/s for tables that hold it.
    _log_run(client, experiment_id, {"entry": "other", "policy": "autoaugment"},
             [(100, 0.3, 1)], [("wall_time_s", 20.0, 100)])
    return uri


def _report(store, **kwargs):
    kwargs.setdefault("filters", "entry=train")
    return rp.build_report(EXPERIMENT, tracking_uri=store, group_by="policy", **kwargs)


def _histories(rows):
    return [[Metric("test/accuracy", value, timestamp, step) for step, value, timestamp in run]
            for run in rows]


# --- curve data ----------------------------------------------------------------------


def test_group_curve_averages_the_latest_value_of_each_shared_step():
    curve = rp.mean_curve(_histories(AUTOAUGMENT))
    assert curve.steps == (100, 200)
    assert curve.mean == pytest.approx((0.6, 0.7), abs=1e-12)
    assert curve.std == pytest.approx((0.1, 0.1), abs=1e-12)
    assert curve.runs == 3


def test_a_single_run_curve_has_no_spread_and_unshared_runs_no_points():
    single = rp.mean_curve(_histories(RANDAUGMENT))
    assert single.steps == (100, 200, 300) and single.mean == pytest.approx((0.4, 0.5, 0.6))
    assert all(math.isnan(value) for value in single.std)
    apart = rp.mean_curve(_histories([[(100, 0.5, 1)], [(200, 0.6, 1)]]))
    assert apart.steps == () and apart.mean == () and apart.std == ()


def test_a_nan_at_a_shared_step_makes_that_mean_nan_rather_than_dropping_the_run():
    curve = rp.mean_curve(_histories([[(100, 0.5, 1), (200, 0.6, 2)],
                                      [(100, math.nan, 1), (200, 0.8, 2)]]))
    assert curve.steps == (100, 200)
    assert math.isnan(curve.mean[0]) and curve.mean[1] == pytest.approx(0.7)


def test_curve_data_gives_one_labelled_curve_per_group(store):
    report = _report(store)
    client = mlflow.MlflowClient(tracking_uri=store)
    curves = rp.curve_data(client, report)
    assert [curve.label for curve in curves] == ["autoaugment", "randaugment"]
    assert curves[0].mean == pytest.approx((0.6, 0.7), abs=1e-12)
    assert curves[1].steps == (100, 200, 300)
    everything = rp.build_report(EXPERIMENT, tracking_uri=store)
    (all_runs,) = rp.curve_data(client, everything)
    assert all_runs.label == "all runs" and all_runs.steps == (100,)
    assert all_runs.mean == pytest.approx(((0.5 + 0.7 + 0.6 + 0.4 + 0.3) / 5,))


def test_the_drawn_lines_and_bands_are_the_curve_data_in_percent(store):
    report = _report(store)
    curves = rp.curve_data(mlflow.MlflowClient(tracking_uri=store), report)
    figure = rp.curves_figure(report, curves)
    axes = figure.axes[0]
    lines = axes.get_lines()
    assert [line.get_label() for line in lines] == ["autoaugment", "randaugment"]
    assert list(lines[0].get_xdata()) == [100, 200]
    assert list(lines[0].get_ydata()) == pytest.approx([60.0, 70.0])
    (band,) = axes.collections[:1]  # the autoaugment band: mean ± one std
    ys = band.get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(50.0) and max(ys) == pytest.approx(80.0)
    assert axes.get_legend().get_title().get_text() == "policy"


def test_write_report_writes_curves_beside_the_other_files(store, tmp_path):
    report = _report(store)
    curves = rp.curve_data(mlflow.MlflowClient(tracking_uri=store), report)
    files = rp.write_report(report, tmp_path, curves=curves)
    assert files.curves == tmp_path / "curves.png"
    png = files.curves.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    assert "![test/accuracy over steps](curves.png)" in files.markdown.read_text()
    without = rp.write_report(report, tmp_path / "plain")
    assert without.curves is None and not (tmp_path / "plain" / "curves.png").exists()


# --- steps/s ---------------------------------------------------------------------------


def test_steps_per_second_is_iterations_over_wall_time(store):
    report = _report(store)
    assert report.groups[0].steps_per_s == pytest.approx((5.0, 3.0, 4.0))
    assert report.groups[0].mean_steps_per_s == pytest.approx(4.0)
    assert report.groups[1].mean_steps_per_s == pytest.approx(2.0)
    assert rp.format_markdown_table(report).splitlines() == [
        "| policy | test/accuracy (final, %) | n | wall time (s) | steps/s |",
        "|---|---|---|---|---|",
        "| autoaugment | 76.67 ± 11.55 | 3 | 70.0 | 4.00 |",
        "| randaugment | 60.00 | 1 | 150.0 | 2.00 |",
    ]


def test_steps_per_second_goes_into_the_csv(store, tmp_path):
    path = rp.write_csv(_report(store), tmp_path / "report.csv")
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["mean_steps_per_s"]) for row in rows] == pytest.approx([4.0, 2.0])


def test_no_steps_per_second_column_unless_every_run_has_both_numbers(store, tmp_path):
    report = _report(store, filters="")
    assert rp.format_markdown_table(report).splitlines()[0] == (
        "| policy | test/accuracy (final, %) | n | wall time (s) |")
    path = rp.write_csv(report, tmp_path / "report.csv")
    assert "mean_steps_per_s" not in path.read_text().splitlines()[0]


# --- entry script ----------------------------------------------------------------------


def test_cli_draws_curves_unless_told_not_to(store, tmp_path, capsys):
    arguments = ["--experiment", EXPERIMENT, "--tracking-uri", store, "--group-by", "policy",
                 "--filter", "entry=train"]
    assert report_entry.main([*arguments, "--output-dir", str(tmp_path / "on")]) == 0
    assert (tmp_path / "on" / "curves.png").exists()
    assert "curves.png" in capsys.readouterr().err
    off = ["--no-curves", "--output-dir", str(tmp_path / "off")]
    assert report_entry.main([*arguments, *off]) == 0
    assert sorted(p.name for p in (tmp_path / "off").iterdir()) == [
        "report.csv", "report.md", "report.png"]


# --- MLflow's process-wide tracking URI --------------------------------------------------


def test_a_report_on_another_store_leaves_the_process_tracking_uri_as_it_was(store, monkeypatch,
                                                                            tmp_path):
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)  # set by the variable alone
    _report(store)
    with pytest.raises(rp.ReportError, match="unknown experiment"):
        rp.build_report("nothing-here", tracking_uri=store)
    assert mlflow.get_tracking_uri() == elsewhere
    assert os.environ["MLFLOW_TRACKING_URI"] == elsewhere
    assert not (tmp_path / "elsewhere.db").exists()
