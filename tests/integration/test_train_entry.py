"""End to end: the `train` entry through `mlflow run` and directly, on real Fashion-MNIST."""

import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train
from augssl.search.aws import OPERATION_NAMES, PairPolicy, save_policy

from .helpers import (
    ROOT,
    all_runs,
    count_data_set_reads,
    needs_fashion_mnist,
    run_script,
    tiny,
)

pytestmark = [needs_fashion_mnist, pytest.mark.slow]


def _artifact_dir(run) -> Path:
    return Path(run.info.artifact_uri.removeprefix("file://"))


@pytest.mark.parametrize("project", [".", "experiments"])
def test_mlflow_run_of_train_logs_params_metrics_artifacts_and_tensorboard(tracking, project):
    params = tiny(policy="autoaugment", learning_rate=0.05, seed=3, eval_every=1)
    run_script(tracking, "-m", "mlflow", "run", str(ROOT / project), "-e", "train",
               "--env-manager", "local", "--experiment-name", "e2e",
               "-P", "dataset=FashionMNIST", "-P", "network=smallcnn", "-P", f"params={params}")
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    logged = run.data.params
    for piece in params.split(";"):  # every key of the multi-key string arrived
        key, value = piece.split("=")
        assert logged[key] == value, key
    assert logged["entry"] == "train" and logged["network"] == "smallcnn"
    metrics = run.data.metrics
    for name in ("test/accuracy", "validation/accuracy", "test/f1_macro", "test/precision_macro",
                 "test/recall_macro", "train/loss", "train/lr", "wall_time_s",
                 "test/class_accuracy/Sneaker", "train/accuracy", "train/f1_macro",
                 "train/precision_macro", "train/recall_macro", "validation/f1_macro"):
        assert name in metrics, name
    assert metrics["test/accuracy"] > 0.15  # 18 steps with AutoAugment: above chance (0.1)
    folder = _artifact_dir(run)
    for name in ("config.json", "best_model.pt", "final_model.pt", "confusion_matrix.png",
                 "augmented_samples.png", "summary.json"):
        assert (folder / name).is_file(), name
    assert list((folder / "checkpoints").glob("checkpoint_*.pt"))
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    assert "test/accuracy" in events.Tags()["scalars"]
    assert len(events.Scalars("test/accuracy")) == 2  # one per epoch
    assert events.Tags()["images"] == ["augmented_samples"]
    hparams = EventAccumulator(str(folder / "tensorboard" / "hparams"))
    hparams.Reload()
    assert "_hparams_/session_start_info" in hparams.PluginTagToContent("hparams")
    assert "test_accuracy" in hparams.Tags()["scalars"]
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    probabilities = model.predict(np.zeros((5, 28, 28, 1), np.uint8))  # raw images, N H W C
    assert probabilities.shape == (5, 10) and probabilities.columns[0] == "T-shirt/top"


def test_bad_params_stop_before_any_run_is_made(tracking):
    result = run_script(tracking, "code/train.py", "FashionMNIST", "smallcnn",
                        "--params", "learning_rte=0.1", check=False)
    assert result.returncode == 2
    assert "unknown parameter 'learning_rte'" in result.stderr
    assert "'learning_rate'" in result.stderr
    assert "Traceback" not in result.stderr
    assert all_runs() == []
    result = run_script(tracking, "code/train.py", "FashionMNIST", "wideresnet28_2",
                        "--params", "", check=False)
    assert result.returncode == 2 and "wideresnet28-2" in result.stderr


@pytest.mark.parametrize("script, params, message", [
    ("code/train.py", "num_labelled_samples=10000000",
     "num_labelled_samples=10000000 asks for more images than FashionMNIST can give"),
    ("code/train.py", "num_validation_samples=70000",
     "num_validation_samples=70000 asks for more images than FashionMNIST can give"),
    ("code/train.py", "num_labelled_samples=5",
     "needs at least one image per class: use num_labelled_samples=10 or more"),
    ("code/main_uda.py", "num_labelled_samples=9",
     "needs at least one image per class: use num_labelled_samples=10 or more"),
    # realmix restricts the classes first: 6 labelled classes need 6 labelled images
    ("code/realmix.py", "labelled_classes=2,3,4,5,6,7;num_labelled_samples=5",
     "needs at least one image per class: use num_labelled_samples=6 or more"),
])
def test_splits_the_data_set_cannot_give_are_refused_before_any_run(tracking, script, params,
                                                                     message):
    result = run_script(tracking, script, "FashionMNIST", "smallcnn", "--params", params,
                        check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert all_runs() == []


def test_train_uses_the_policy_a_search_run_learned_and_refuses_a_missing_one(tracking,
                                                                               tmp_path):
    policy = PairPolicy()
    with torch.no_grad():  # nearly all mass on (Invert, Equalize): an unmistakable policy
        policy.first_logits[OPERATION_NAMES.index("Invert")] = 30.0
        policy.second_logits[:, OPERATION_NAMES.index("Equalize")] = 30.0
    with mlflow.start_run(run_name="search") as search:
        mlflow.log_artifact(str(save_policy(policy, tmp_path / "policy.json")))
    run_script(tracking, "code/train.py", "FashionMNIST", "smallcnn",
               "--params", tiny(policy=f"aws:{search.info.run_id}", num_epochs=1))
    (run,) = [r for r in all_runs() if r.info.run_id != search.info.run_id]
    assert run.info.status == "FINISHED"
    assert run.data.params["policy"] == f"aws:{search.info.run_id}"
    # the logged examples are inverted: mostly light backgrounds instead of black ones
    grid = Image.open(_artifact_dir(run) / "augmented_samples.png").convert("L")
    assert np.asarray(grid).mean() > 128

    result = run_script(tracking, "code/train.py", "FashionMNIST", "smallcnn",
                        "--params", "policy=aws:0123456789abcdef0123456789abcdef", check=False)
    assert result.returncode == 2 and "has no policy.json" in result.stderr
    assert len(all_runs()) == 2


def test_missing_data_names_the_searched_path(tracking, tmp_path):
    result = run_script(tracking, "code/train.py", "CIFAR10", "smallcnn",
                        "--params", f"data_path={tmp_path}/nowhere", check=False)
    assert result.returncode == 2
    assert f"{tmp_path}/nowhere" in result.stderr
    assert all_runs() == []


def test_augmentation_in_pil_workers_and_bf16_autocast_train_too(tracking):
    run_script(tracking, "code/train.py", "FashionMNIST", "smallcnn", "--params",
               tiny(augment_on="cpu", policy="randaugment", amp="bf16"))
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test/accuracy"] > 0.3


def test_two_processes_with_gloo_on_the_cpu_beside_another_group(tracking):
    """The spawned group meets on a port of its own: another group on this machine holding the
    launcher's default port (2222) made the run fail with EADDRINUSE."""
    with socket.socket() as other_group:
        try:
            other_group.bind(("127.0.0.1", 2222))
            other_group.listen()
        except OSError:
            pass  # something else holds the port already: the case under test
        run_script(tracking, "code/train.py", "FashionMNIST", "smallcnn", "--params",
                   tiny(backend="gloo", nproc_per_node=2))
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert run.data.params["nproc_per_node"] == "2"
    assert run.data.metrics["test/accuracy"] > 0.3


def test_a_run_reads_and_decodes_its_data_set_once(tracking, monkeypatch):
    # the preflight's read is the one the session trains on
    reads = count_data_set_reads(monkeypatch)
    train.main(["FashionMNIST", "smallcnn", "--params", tiny(num_epochs=1, eval_every=1)])
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert reads == ["FashionMNIST"]


def test_runs_started_at_once_on_a_fresh_store_all_finish(tracking):
    """MLflow makes a new SQLite store's tables on first use: processes doing it at the same time
    broke each other's migration (one died with an alembic CommandError and left no run)."""
    started = [subprocess.Popen([sys.executable, "code/train.py", "FashionMNIST", "smallcnn",
                                 "--params", tiny(num_epochs=1, eval_every=1, seed=seed)],
                                cwd=ROOT, env=tracking, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for seed in range(3)]
    errors = [process.communicate(timeout=600)[1] for process in started]
    assert [process.returncode for process in started] == [0, 0, 0], "\n".join(errors)[-4000:]
    assert sorted(run.info.status for run in all_runs()) == ["FINISHED"] * 3
