"""Crash, resume and non-finite losses, driven in-process on a few Fashion-MNIST steps."""

from pathlib import Path

import mlflow
import pytest
import torch

import fixmatch
import main_uda
import train
from augssl.config import parse_params
from augssl.engine.trainer import NonFiniteLossError

from .helpers import SimulatedCrash, all_runs, crash_at, needs_fashion_mnist, tiny

pytestmark = [needs_fashion_mnist, pytest.mark.slow]

BASE = {"num_epochs": 3, "policy": "autoaugment", "ema_decay": 0.9, "checkpoint_every": 4}


def _config(**overrides):
    return parse_params(tiny(**{**BASE, **overrides}), train.TrainConfig, dataset="FashionMNIST",
                        network="smallcnn")


def _final_weights(run) -> dict:
    folder = Path(run.info.artifact_uri.removeprefix("file://"))
    return torch.load(folder / "final_model.pt", weights_only=True)["model"]


def _as_older_checkpoints(run) -> None:
    """Rewrite a run's checkpoints as they were before the batch streams had a state."""
    folder = Path(run.info.artifact_uri.removeprefix("file://")) / "checkpoints"
    for path in folder.glob("checkpoint_*.pt"):
        state = torch.load(path, weights_only=True)
        del state["streams"]
        torch.save(state, path)


def _check_resume_is_exact(monkeypatch, training, config, crash_step: int, last_step: int,
                           before_resume=lambda run: None):
    training(0, config())
    (reference,) = all_runs()

    with monkeypatch.context() as patch:
        crash_at(patch, crash_step)
        with pytest.raises(SimulatedCrash):
            training(0, config())
    crashed = next(r for r in all_runs() if r.info.run_id != reference.info.run_id)
    assert mlflow.get_run(crashed.info.run_id).info.status == "FAILED"
    before_resume(crashed)

    training(0, config(resume=crashed.info.run_id))
    resumed = mlflow.get_run(crashed.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert len(all_runs()) == 2  # the same run went on, no new one
    expected, got = _final_weights(reference), _final_weights(resumed)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
    history = mlflow.MlflowClient().get_metric_history(crashed.info.run_id, "test/accuracy")
    assert [m.step for m in history][-1] == last_step


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tracking, monkeypatch):
    # 9 iterations per epoch; the crash comes mid-epoch, after the checkpoint of iteration 12
    _check_resume_is_exact(monkeypatch, train.training, _config, crash_step=14, last_step=27)


def _uda_config(**overrides):
    # 5 labelled batches per epoch, and the unlabelled loader is mid-epoch all along
    params = tiny(num_labelled_samples=100, batch_size=20, unlabelled_batch_size=50,
                  num_epochs=3, checkpoint_every=4, ema_decay=0.9, **overrides)
    return parse_params(params, main_uda.UdaConfig, dataset="FashionMNIST", network="smallcnn")


def test_a_resumed_uda_run_ends_where_an_uninterrupted_one_does(tracking, monkeypatch):
    # the crash tests that both loaders are positioned again
    _check_resume_is_exact(monkeypatch, main_uda.training, _uda_config, crash_step=11,
                           last_step=15)


def test_a_checkpoint_from_before_the_streams_had_a_state_resumes_exactly(tracking, monkeypatch):
    # the labelled and unlabelled batches are positioned from the trainer's iteration instead
    _check_resume_is_exact(monkeypatch, main_uda.training, _uda_config, crash_step=11,
                           last_step=15, before_resume=_as_older_checkpoints)


def test_a_resumed_fixmatch_run_ends_where_an_uninterrupted_one_does(tracking, monkeypatch):
    # as for UDA: 5 labelled batches per epoch, the unlabelled loader (40 images per step)
    # mid-epoch all along; the low threshold makes the pseudo-labels, and so the strong view,
    # take part before the crash
    def config(**overrides):
        params = tiny(num_labelled_samples=100, batch_size=20, mu=2, num_epochs=3,
                      epoch_length=0, checkpoint_every=4, threshold=0.5, **overrides)
        return parse_params(params, fixmatch.FixmatchConfig, dataset="FashionMNIST",
                            network="smallcnn")

    _check_resume_is_exact(monkeypatch, fixmatch.training, config, crash_step=11, last_step=15)


def test_resume_with_other_params_is_refused_before_training(tracking, monkeypatch):
    with monkeypatch.context() as patch:
        crash_at(patch, 6)
        with pytest.raises(SimulatedCrash):
            train.training(0, _config())
    (run,) = all_runs()
    with pytest.raises(ValueError, match="learning_rate: run has '0.05', now '0.1'"):
        train.training(0, _config(learning_rate=0.1, resume=run.info.run_id))


def test_a_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tracking):
    with pytest.raises(NonFiniteLossError, match="NaN or infinite"):
        train.training(0, _config(learning_rate=1e30, policy="none", ema_decay=0))
    (run,) = all_runs()
    assert run.info.status == "FAILED"
    folder = Path(run.info.artifact_uri.removeprefix("file://")) / "checkpoints"
    for path in folder.glob("checkpoint_*.pt"):
        state = torch.load(path, weights_only=True)["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
