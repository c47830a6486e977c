"""End to end: the FixMatch entry through `mlflow run` on a few Fashion-MNIST steps."""

import math

import mlflow
import pytest

from .helpers import ROOT, all_runs, needs_fashion_mnist, run_script, tiny

pytestmark = [needs_fashion_mnist, pytest.mark.slow]


def test_fixmatch_runs_end_to_end_and_logs_its_losses_and_pseudo_label_diagnostics(tracking):
    # a low threshold, so that pseudo-labels are used within a dozen steps of an untrained model
    params = tiny(num_labelled_samples=100, num_validation_samples=200, batch_size=20, mu=2,
                  num_epochs=2, epoch_length=6, threshold=0.5)
    run_script(tracking, "-m", "mlflow", "run", str(ROOT / "experiments"), "-e", "fixmatch",
               "--env-manager", "local", "--experiment-name", "fixmatch",
               "-P", "dataset=FashionMNIST", "-P", "network=smallcnn", "-P", f"params={params}")
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert (run.data.params["mu"], run.data.params["ema_decay"]) == ("2", "0.999")
    metrics = run.data.metrics
    for name in ("train/supervised_loss", "train/unsupervised_loss", "train/loss",
                 "train/mask_rate", "train/pseudo_label_accuracy", "train/lr",
                 "validation/accuracy", "test/accuracy"):
        assert name in metrics, name
    # the schedule ends at lr * cos(7 pi / 16) after its 12 steps
    assert metrics["train/lr"] == pytest.approx(0.03 * math.cos(7 * math.pi / 16))
    history = mlflow.MlflowClient().get_metric_history

    def logged(name: str) -> list[float]:
        return [m.value for m in history(run.info.run_id, name)]

    assert max(logged("train/mask_rate")) > 0
    accuracies = [a for a in logged("train/pseudo_label_accuracy") if not math.isnan(a)]
    assert accuracies and all(0.0 <= a <= 1.0 for a in accuracies)
    assert metrics["test/accuracy"] > 0.2
