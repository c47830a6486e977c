"""Against a real `mlflow server` (sqlite backend, artifacts served over HTTP): checkpoints and
TensorBoard events reach the server while a run trains, a run killed with SIGKILL resumes by
run id and ends where an uninterrupted one ends, the logged model, served by MLflow where the
project cannot be imported, predicts what `predict` does, and learned policies and reports read
from the server."""

import csv
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from PIL import Image

import predict
import train
from augssl.config import parse_params
from augssl.engine.checkpoint import resolve_resume, save_checkpoint
from augssl.report import build_report
from augssl.search.aws import PairPolicy, save_policy
from augssl.search.aws.learned import resolve_learned_policy

from .helpers import ROOT, needs_fashion_mnist, run_script, tiny, write_image_folder

pytestmark = [needs_fashion_mnist, pytest.mark.slow]

# 9 iterations per epoch, checkpoints at 4, 8, ..., 24; the kill comes at 14
PARAMS = {"num_epochs": 3, "policy": "autoaugment", "ema_decay": 0.9, "checkpoint_every": 4}


def _config(**overrides):
    return parse_params(tiny(**{**PARAMS, **overrides}), train.TrainConfig,
                        dataset="FashionMNIST", network="smallcnn")


def _runs():
    """The runs of the test's own experiment (the server is shared by the module's tests)."""
    return mlflow.search_runs(experiment_names=[os.environ["MLFLOW_EXPERIMENT_NAME"]],
                              output_format="list")


def _final_weights(run_id: str) -> dict:
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="final_model.pt")
    return torch.load(local, weights_only=True)["model"]


def _artifacts(run_id: str, folder: str) -> list[str]:
    return [item.path for item in mlflow.MlflowClient().list_artifacts(run_id, folder)]


def test_a_run_killed_with_sigkill_resumes_through_the_server(server_tracking, tmp_path):
    train.training(0, _config())
    (reference,) = _runs()
    assert _artifacts(reference.info.run_id, "checkpoints") == [
        "checkpoints/checkpoint_20.pt", "checkpoints/checkpoint_24.pt"]

    # TMPDIR: the staging folder the killed process cannot remove stays with the test's files
    result = run_script({**server_tracking, "TMPDIR": str(tmp_path)},
                        "tests/integration/killed_run.py", "14", "code/train.py", "FashionMNIST",
                        "smallcnn", "--params", tiny(**PARAMS), check=False)
    assert result.returncode == -9, result.stderr[-3000:]
    (killed,) = [r for r in _runs() if r.info.run_id != reference.info.run_id]
    run_id = killed.info.run_id
    assert killed.info.status == "RUNNING"  # nobody could end it
    assert _artifacts(run_id, "checkpoints")  # uploaded while it trained
    assert _artifacts(run_id, "tensorboard")
    assert "final_model.pt" not in _artifacts(run_id, "")

    train.training(0, _config(resume=run_id))
    resumed = mlflow.get_run(run_id)
    assert resumed.info.status == "FINISHED"
    assert len(_runs()) == 2  # the same run went on
    expected, got = _final_weights(reference.info.run_id), _final_weights(run_id)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
    history = mlflow.MlflowClient().get_metric_history(run_id, "test/accuracy")
    assert history[-1].step == 27
    assert _artifacts(run_id, "checkpoints") == [
        "checkpoints/checkpoint_20.pt", "checkpoints/checkpoint_24.pt"]


class _Counter(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(float(value)))


def test_resume_skips_a_checkpoint_cut_short_by_a_crash(server_tracking, tmp_path):
    for iteration in (4, 8):
        save_checkpoint(tmp_path / "written", iteration, {"model": _Counter(iteration)})
    whole = (tmp_path / "written" / "checkpoint_8.pt").read_bytes()
    (tmp_path / "written" / "checkpoint_8.pt").write_bytes(whole[:len(whole) // 2])
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path / "written"), "checkpoints")
    state, where = resolve_resume(run.info.run_id).load()
    assert float(state["model"]["value"]) == 4.0
    assert where == f"checkpoints/checkpoint_4.pt of run {run.info.run_id}"


def _alone(env, *args):
    """``args`` run by a Python that can import mlflow and its dependencies but not the project."""
    # on the CPU, as `predict --device cpu`: a GPU's kernels round differently
    alone = {**env, "PYTHONPATH": sysconfig.get_paths()["purelib"], "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-S", *args], env=alone, capture_output=True,
                          text=True, timeout=600, check=True)


def test_the_served_model_predicts_as_predict_does(server_tracking, tmp_path):
    train.training(0, _config(num_epochs=1, eval_every=1, register_model="fashion-classifier"))
    (run,) = _runs()
    run_id = run.info.run_id
    classes = write_image_folder(tmp_path / "images", per_class=2)
    predict.main([run_id, str(tmp_path / "images"), "--output", str(tmp_path / "predicted"),
                  "--device", "cpu"])
    expected = np.load(tmp_path / "predicted.npy")
    paths = [Path(row["path"]) for row in
             csv.DictReader((tmp_path / "predicted.csv").open())]
    images = np.stack([np.asarray(Image.open(path))[..., None] for path in paths])
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.uint8
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "images.json").write_text(json.dumps({"inputs": images.tolist()}))

    model = f"runs:/{run_id}/model"
    _alone(server_tracking, "-m", "mlflow", "models", "predict", "-m", model,
           "-i", str(tmp_path / "images.json"), "-o", str(tmp_path / "served.json"),
           "--env-manager", "local")
    served = json.loads((tmp_path / "served.json").read_text())["predictions"]
    served = np.array([[row[name] for name in classes] for row in served])
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-6)

    _alone(server_tracking, str(ROOT / "tests/integration/load_model_alone.py"), model,
           str(tmp_path / "images.npy"), str(tmp_path / "alone.json"))
    alone = json.loads((tmp_path / "alone.json").read_text())
    assert not alone["importable_before"]
    assert not Path(alone["package"]).is_relative_to(ROOT)  # the copy logged with the model
    assert alone["columns"] == list(classes)
    np.testing.assert_allclose(np.array(alone["probabilities"]), expected, rtol=0, atol=1e-6)
    requirements = mlflow.artifacts.load_text(f"{model}/requirements.txt").split()
    required = {line.split("==")[0] for line in requirements}
    assert "torchvision" in alone["imports"]
    for name, distributions in alone["imports"].items():  # mlflow: mlflow, mlflow-skinny, ...
        assert required & set(distributions), f"{name} is not in {requirements}"

    (version,) = mlflow.MlflowClient().search_model_versions("name='fashion-classifier'")
    (best,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                          filter_string="name = 'best_model'",
                                          output_format="list")
    assert version.run_id == run_id and version.source == f"models:/{best.model_id}"


def test_learned_policies_and_reports_read_from_the_server(server_tracking, tmp_path):
    policy = save_policy(PairPolicy(), tmp_path / "policy.json")
    with mlflow.start_run() as search:
        mlflow.log_artifact(str(policy))
    assert resolve_learned_policy(search.info.run_id).read_text() == policy.read_text()
    for seed, accuracy in ((0, 0.5), (1, 0.7)):
        with mlflow.start_run():
            mlflow.log_params({"entry": "train", "seed": seed})
            mlflow.log_metric("test/accuracy", accuracy, step=10)
    report = build_report(os.environ["MLFLOW_EXPERIMENT_NAME"], group_by="entry")
    (group,) = report.groups
    assert group.key == ("train",) and group.n == 2 and group.mean == pytest.approx(0.6)
