"""The `sweep` entry end to end: tiny `train` trials on Fashion-MNIST, on a local Ray and in
process, a rerun, a failing trial and an interrupted one."""

import mlflow
import pytest

import sweep
import train
from augssl.analysis import runs
from augssl.analysis.runner import run_sweep
from augssl.analysis.spec import check_trials, load_spec
from augssl.config import parse_params

from .helpers import TINY, SimulatedCrash, all_runs, crash_at, needs_fashion_mnist

pytestmark = [needs_fashion_mnist, pytest.mark.slow]

# 4 steps of 50 images an epoch, few images evaluated: each trial is mostly its process start
FAST = {**TINY, "num_labelled_samples": 200, "batch_size": 50, "num_epochs": 1, "eval_every": 1,
        "train_eval_samples": 100}


def _params(**overrides) -> str:
    """FAST with ``overrides``; a None override leaves the key out."""
    values = {**FAST, **overrides}
    return ";".join(f"{key}={value}" for key, value in values.items() if value is not None)


def _write_spec(folder, params: str, seeds=(0,), extra: str = ""):
    path = folder / "tiny.toml"
    path.write_text(f'experiment = "sweeps"\ndataset = "FashionMNIST"\nnetwork = "smallcnn"\n'
                    f'seeds = {list(seeds)}\nparams = "{params}"\n\n[[line]]\nentry = "train"\n'
                    f'{extra}\n[report]\ngroup_by = ["policy"]\n')
    return path


def _sweep_and_trials():
    found = [r for r in all_runs() if runs.SWEEP_TAG in r.data.tags]  # not a search's evaluations
    (parent,) = [r for r in found if runs.TRIAL_TAG not in r.data.tags]
    trials = sorted((r for r in found if runs.TRIAL_TAG in r.data.tags),
                    key=lambda r: r.info.start_time)
    return parent, trials


def test_a_sweep_on_a_local_ray_makes_a_child_run_per_trial_and_a_rerun_skips_them(
        tracking, tmp_path, capsys):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install -e .[ray])")
    spec = _write_spec(tmp_path, _params(), seeds=(0, 1))
    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False)
    try:
        assert sweep.main([str(spec), "--executor", "ray", "--max-concurrent", "2"]) == 0
    finally:
        ray.shutdown()
    table = capsys.readouterr().out
    parent, trials = _sweep_and_trials()
    assert parent.info.status == "FINISHED" and parent.info.run_name == "tiny"
    assert parent.data.metrics["trials_finished"] == 2
    assert len(trials) == 2
    for run in trials:
        tags = run.data.tags
        assert run.info.status == "FINISHED"
        assert tags[runs.PARENT_TAG] == parent.info.run_id and tags[runs.SWEEP_TAG] == "tiny"
        assert tags[runs.ENTRY_TAG] == "train" and run.data.params["entry"] == "train"
        assert run.data.params["seed"] == tags[runs.SEED_TAG]
    assert {run.data.tags[runs.SEED_TAG] for run in trials} == {"0", "1"}
    client = mlflow.MlflowClient()
    assert {item.path for item in client.list_artifacts(parent.info.run_id, "report")} == {
        "report/report.md", "report/report.csv", "report/report.png", "report/curves.png"}
    assert "| policy | test/accuracy (final, %) | n | wall time (s) |" in table
    assert "| cutout | " in table and " | 2 | " in table

    assert sweep.main([str(spec), "--executor", "inprocess"]) == 0
    assert "2 trials, 2 FINISHED before, 0 to run" in capsys.readouterr().err
    again, trials_again = _sweep_and_trials()
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert [r.info.run_id for r in trials_again] == [r.info.run_id for r in trials]


def test_a_failing_trial_is_marked_failed_with_its_reason_and_the_others_go_on(tracking,
                                                                            tmp_path, capsys):
    # 70000 validation images: a value the params accept that the entry refuses on the data set
    spec = _write_spec(tmp_path, _params(num_validation_samples=None),
                       extra="[grid]\nnum_validation_samples = [300, 70000]\n")
    assert sweep.main([str(spec), "--executor", "inprocess"]) == 0
    captured = capsys.readouterr()
    parent, trials = _sweep_and_trials()
    assert parent.info.status == "FINISHED"
    finished, failed = trials
    assert finished.info.status == "FINISHED"
    assert failed.info.status == "FAILED"
    assert failed.data.tags[runs.POINT_TAG] == "num_validation_samples=70000"
    note = failed.data.tags["mlflow.note.content"]
    assert note.startswith("train exited with code 2:")
    assert "num_validation_samples=70000 asks for more images than FashionMNIST" in note
    assert "1 of 2 trials FINISHED" in captured.err
    assert "| cutout | " in captured.out and " | 1 | " in captured.out

    # a rerun tries the failed trial again, in a new run (it had no checkpoint to go on from)
    assert sweep.main([str(spec), "--executor", "inprocess"]) == 0
    assert "2 trials, 1 FINISHED before, 1 to run" in capsys.readouterr().err
    again, trials_again = _sweep_and_trials()
    assert again.info.status == "FINISHED"
    assert [r.info.status for r in trials_again] == ["FINISHED", "FAILED", "FAILED"]


def test_a_rerun_resumes_an_interrupted_trial_from_its_checkpoint_in_its_run(tracking, tmp_path,
                                                                             monkeypatch, capsys):
    # 8 steps, a checkpoint every 3: interrupted at step 5, the trial goes on from step 3
    path = _write_spec(tmp_path, _params(num_epochs=2, checkpoint_every=3))
    spec = load_spec(path)

    def interrupted(tasks):
        (task,) = tasks
        config = parse_params(task.trial.params, train.TrainConfig, dataset=task.trial.dataset,
                              network=task.trial.network)
        monkeypatch.setenv("MLFLOW_RUN_ID", task.run_id)  # as the trial's process has it
        with monkeypatch.context() as patch:
            crash_at(patch, 5)
            train.training(0, config)

    with pytest.raises(SimulatedCrash):
        run_sweep(spec, check_trials(spec), interrupted)
    parent, (trial,) = _sweep_and_trials()
    assert parent.info.status == "FAILED" and trial.info.status == "FAILED"

    assert sweep.main([str(path), "--executor", "inprocess"]) == 0
    assert "1 trials, 0 FINISHED before, 1 to run" in capsys.readouterr().err
    again, (resumed,) = _sweep_and_trials()
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert resumed.info.run_id == trial.info.run_id and resumed.info.status == "FINISHED"
    # losses every 2 steps: 2 and 4 before the interruption, then 4 to 8 from the checkpoint of 3
    history = mlflow.MlflowClient().get_metric_history(resumed.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [2, 4, 4, 6, 8]


def test_a_sweep_trains_with_the_policy_its_search_line_learned(tracking, tmp_path, capsys):
    search = _params(num_validation_samples=200, epoch_length=2, finetune_epochs=1,
                     search_loops=1, evaluations_per_loop=2, eval_every=None,
                     train_eval_samples=None)
    path = tmp_path / "chain.toml"
    path.write_text(f'experiment = "sweeps"\ndataset = "FashionMNIST"\nnetwork = "smallcnn"\n'
                    f'seeds = [0]\n\n[[line]]\nname = "search"\nentry = "aws_search"\n'
                    f'params = "{search}"\n\n[[line]]\nentry = "train"\nparams = "{_params()}"\n'
                    f'grid = {{ policy = ["aws:{{search}}", "aws:uniform"] }}\n\n'
                    f'[report]\ngroup_by = ["policy"]\nfilter = "entry=train"\n')
    assert sweep.main([str(path), "--executor", "inprocess"]) == 0
    parent, (searched, learned, uniform) = _sweep_and_trials()
    assert [r.info.status for r in (parent, searched, learned, uniform)] == ["FINISHED"] * 4
    assert searched.data.params["entry"] == "aws_search"
    assert learned.data.params["policy"] == f"aws:{searched.info.run_id}"
    assert learned.data.tags[runs.PARAMS_TAG].endswith("policy=aws:{search};seed=0")
    assert uniform.data.params["policy"] == "aws:uniform"
    table = capsys.readouterr().out
    assert f"| aws:{searched.info.run_id} | " in table and "| aws:uniform | " in table
