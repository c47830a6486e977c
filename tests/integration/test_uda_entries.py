"""End to end: the UDA entries through `mlflow run`, as the original commands run them."""

import pytest

from .helpers import ROOT, all_runs, needs_fashion_mnist, run_script, tiny

pytestmark = [needs_fashion_mnist, pytest.mark.slow]

UDA_TINY = dict(num_labelled_samples=100, num_validation_samples=200, batch_size=20,
                unlabelled_batch_size=40, num_epochs=2, epoch_length=6, log_every=2)


@pytest.mark.parametrize("entry, expected_tsa", [("main", True), ("main_uda", True),
                                                  ("main_uda2", False)])
def test_uda_entries_run_end_to_end_and_log_their_losses(tracking, entry, expected_tsa):
    params = tiny(**UDA_TINY, TSA_proba_min=0.1, consistency_criterion="KL")
    run_script(tracking, "-m", "mlflow", "run", str(ROOT / "experiments"), "-e", entry,
               "--env-manager", "local", "--experiment-name", "uda",
               "-P", "dataset=FashionMNIST", "-P", "network=smallcnn", "-P", f"params={params}")
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert run.data.params["with_TSA"] == str(expected_tsa)
    assert run.data.params["labelled_consistency"] == str(entry == "main_uda2")
    metrics = run.data.metrics
    for name in ("train/supervised_loss", "train/consistency_loss", "train/loss",
                 "train/tsa_threshold", "train/tsa_kept_fraction", "train/mask_rate", "train/lr",
                 "validation/accuracy", "test/accuracy"):
        assert name in metrics, name
    assert metrics["train/loss"] != metrics["train/supervised_loss"]
    assert metrics["test/accuracy"] > 0.2


def test_original_parameter_names_are_accepted_and_pil_workers_make_the_views(tracking):
    run_script(tracking, "code/main_uda.py", "FashionMNIST", "smallcnn", "--params",
               tiny(**UDA_TINY, data_path="", learning_rate=0.03, TSA_proba_min=0.5,
                    TSA_proba_max=1.0, num_warmup_steps=2, consistency_lambda=1.0,
                    consistency_criterion="MSE", with_TSA=True, uda_softmax_temp=0.4,
                    uda_confidence_thresh=0.5, ent_min_coeff=0.1, TSA_schedule="exp",
                    strong_policy="randaugment", momentum=0.9, weight_decay=1e-4,
                    augment_on="cpu", num_workers=1))
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert run.data.params["consistency_temperature"] == "0.4"
