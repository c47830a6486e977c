"""End to end: the autodo entry on a tiny biased Fashion-MNIST (300 training images, 100 clean
validation images; one warm epoch, then epochs of one hyper pass and one training pass)."""

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import autodo
from augssl.config import parse_params
from augssl.data.bias import load_biased_split
from augssl.data.sources import load_dataset
from augssl.engine.amp import Precision

from .helpers import (
    ROOT,
    all_runs,
    count_data_set_reads,
    crash_at,
    needs_fashion_mnist,
    run_script,
)

pytestmark = [needs_fashion_mnist, pytest.mark.slow]

# 40 clean images per class, IR 2: 200 + 100 biased training images, 4 batches an epoch;
# epoch 1 (iterations 1-4) warms up; epochs 2 and 3 each run a hyper pass of 4 hyper steps,
# then train the network (iterations 5-8 and 9-12).
TINY_AUTODO = {"num_labelled_samples": 400, "num_validation_samples": 100, "ir": 2, "nr": 0.2,
               "run": 1, "batch_size": 64, "num_epochs": 3, "warm_epochs": 1,
               "learning_rate": 0.01, "aug_model": "SEP", "los_model": "BOTH",
               "hyper_opt": "HES", "log_every": 1, "checkpoint_every": 3, "eval_every": 3}


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, np.uint8).tobytes())


@pytest.fixture(scope="module")
def fashion_subset(tmp_path_factory) -> Path:
    """The first 3,000 training and 500 test images of Fashion-MNIST, in its own files: the
    runs evaluate on 500 test images instead of 10,000."""
    bundle = load_dataset("FashionMNIST")
    folder = tmp_path_factory.mktemp("fashion")
    for prefix, source, count in (("train", bundle.train, 3000), ("t10k", bundle.test, 500)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", source.images[:count, :, :, 0])
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.asarray(source.targets[:count]))
    return folder


def _params(data_path: Path, **overrides) -> str:
    values = {**TINY_AUTODO, "data_path": data_path, **overrides}
    return ";".join(f"{k}={v}" for k, v in values.items())


def _config(data_path: Path, **overrides) -> autodo.AutodoConfig:
    return parse_params(_params(data_path, **overrides), autodo.AutodoConfig,
                        dataset="FashionMNIST", network="smallcnn")


def _artifacts(run) -> Path:
    return Path(run.info.artifact_uri.removeprefix("file://"))


def _history(run_id: str, name: str) -> dict[int, float]:
    return {m.step: m.value for m in mlflow.MlflowClient().get_metric_history(run_id, name)}


def test_sep_both_hes_runs_end_to_end_and_leaves_its_artifacts(tracking, fashion_subset):
    # two epochs: the warm one, then one with a hyper pass
    run_script(tracking, "-m", "mlflow", "run", str(ROOT), "-e", "autodo", "--env-manager",
               "local", "-P", "dataset=FashionMNIST", "-P", "network=smallcnn",
               "-P", f"params={_params(fashion_subset, num_epochs=2)}")
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert run.data.params["imbalance_ratio"] == "2.0"
    assert run.data.params["noise_ratio"] == "0.2"
    assert run.data.params["loss_model"] == "BOTH"
    assert run.data.params["policy"] == "none"

    folder = _artifacts(run)
    split = load_biased_split(folder / autodo.BIASED_SPLIT_FILE)
    assert len(split) == 300 and len(split.validation_indices) == 100
    redrawn = autodo.biased_split(_config(fashion_subset),
                                  load_dataset("FashionMNIST", fashion_subset))
    for name in ("train_indices", "train_targets", "is_noisy", "validation_indices"):
        np.testing.assert_array_equal(getattr(split, name), getattr(redrawn, name))
    assert 0.1 < split.is_noisy.mean() < 0.2  # 60 labels redrawn, a tenth of them unchanged

    learned = np.load(folder / autodo.LEARNED_TABLES_FILE)
    initial = np.array([np.log(0.2 / 0.8), 0.0], dtype=np.float32)
    moved = (learned["augment_table"] != initial).any(axis=(1, 2))
    assert learned["augment_table"].shape == (300, 7, 2)
    assert moved.sum() == 256  # the hyper pass's 4 batches of 64, and no other image
    np.testing.assert_array_equal(learned["weights"] != 1, moved)
    for name in ("learned_weights.png", "learned_augmentation.png", "augmented_samples.png",
                 "best_model.pt", "final_model.pt"):
        assert (folder / name).stat().st_size > 0, name

    metrics = run.data.metrics
    assert 0 <= metrics["noisy_weight_auc"] <= 1
    assert 0 <= metrics["noisy_weight_auc_within_class"] <= 1
    for name in ("train/hyper_train_loss", "validation/accuracy", "test/accuracy",
                 "learned_augment/rotate_probability", "learned_weight/noisy_mean",
                 "bias/noisy_fraction"):
        assert name in metrics, name
    # the hyper pass ran before the training pass of epoch 2, after the 4 warm steps
    assert list(_history(run.info.run_id, "train/hyper_val_loss")) == [4]
    assert metrics["train/network_steps"] == 8
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    assert {"learned_weight/clean", "learned_weight/noisy"} <= set(events.Tags()["histograms"])
    assert [h.step for h in events.Histograms("learned_weight/noisy")] == [4]


def _count_network_steps(monkeypatch) -> list[int]:
    calls = []
    backward_and_step = Precision.backward_and_step

    def counted(precision, loss, optimizer):
        calls.append(1)
        backward_and_step(precision, loss, optimizer)

    monkeypatch.setattr(Precision, "backward_and_step", counted)
    return calls



def test_a_run_reads_and_decodes_its_data_set_once(tracking, monkeypatch, fashion_subset):
    # the preflight's read serves the check of the biased split and the session
    reads = count_data_set_reads(monkeypatch)
    autodo.main(["FashionMNIST", "smallcnn", "--params",
                 _params(fashion_subset, num_epochs=2, aug_model="NONE", los_model="NONE",
                         hyper_opt="NONE")])
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert reads == ["FashionMNIST"]

@pytest.mark.parametrize("method", [
    {"aug_model": "NONE", "los_model": "NONE", "hyper_opt": "NONE"},
    {"aug_model": "NONE", "los_model": "WGHT", "hyper_opt": "HES"},
    {"aug_model": "SEP", "los_model": "BOTH", "hyper_opt": "HES"},
])
def test_every_method_trains_the_network_for_the_same_number_of_steps(
        tracking, monkeypatch, fashion_subset, method):
    calls = _count_network_steps(monkeypatch)
    autodo.training(0, _config(fashion_subset, **method))
    (run,) = all_runs()
    assert len(calls) == 12  # 3 epochs of 4 batches, hyper passes or not
    assert run.data.metrics["train/network_steps"] == 12
    if method["hyper_opt"] == "HES":
        # one hyper pass before each training pass after the warm epoch
        assert list(_history(run.info.run_id, "train/hyper_val_loss")) == [4, 8]


# (checkpoint_every, crash after): resumed inside epoch 2, after its hyper pass (checkpoint 6),
# or at the end of epoch 1, before epoch 2's hyper pass (checkpoint 4)
@pytest.mark.parametrize("checkpoint_every, crash", [(3, 7), (4, 6)])
def test_a_resumed_run_learns_what_an_uninterrupted_one_does(
        tracking, monkeypatch, fashion_subset, checkpoint_every, crash):
    autodo.training(0, _config(fashion_subset))
    (reference,) = all_runs()

    with monkeypatch.context() as patch:
        crash_at(patch, crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            autodo.training(0, _config(fashion_subset, checkpoint_every=checkpoint_every))
    crashed = next(r for r in all_runs() if r.info.run_id != reference.info.run_id)
    assert mlflow.get_run(crashed.info.run_id).info.status == "FAILED"

    autodo.training(0, _config(fashion_subset, checkpoint_every=checkpoint_every,
                               resume=crashed.info.run_id))
    resumed = mlflow.get_run(crashed.info.run_id)
    assert resumed.info.status == "FINISHED"
    expected = np.load(_artifacts(reference) / autodo.LEARNED_TABLES_FILE)
    got = np.load(_artifacts(resumed) / autodo.LEARNED_TABLES_FILE)
    for name in ("augment_table", "weights", "soft_labels"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    expected_model = torch.load(_artifacts(reference) / "final_model.pt", weights_only=True)
    got_model = torch.load(_artifacts(resumed) / "final_model.pt", weights_only=True)
    for name, value in expected_model["model"].items():
        torch.testing.assert_close(got_model["model"][name], value, rtol=0, atol=1e-6, msg=name)
    for name in ("noisy_weight_auc", "train/hyper_val_loss"):
        assert _history(resumed.info.run_id, name) == _history(reference.info.run_id, name)


@pytest.mark.parametrize("bad, message", [
    ("nr=1.5", "noise_ratio (nr) = 1.5 is out of range: expected 0 <= nr < 1"),
    ("aug_model=DADA", "aug_model=DADA is not available yet"),
    ("ir=500", "imbalance_ratio=500.0 keeps no image of classes 5..9"),
])
def test_bad_inputs_are_refused_before_any_run(tracking, monkeypatch, capsys, fashion_subset,
                                               bad, message):
    def must_not_train(*args):
        raise AssertionError("training started despite a bad input")

    monkeypatch.setattr(autodo, "training", must_not_train)
    params = _params(fashion_subset, **dict([bad.split("=")]))
    with pytest.raises(SystemExit) as stopped:
        autodo.main(["FashionMNIST", "smallcnn", "--params", params])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    store = Path(tracking["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
    assert not store.exists()  # nothing reached MLflow
