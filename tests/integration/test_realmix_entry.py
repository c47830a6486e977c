"""End to end: the `realmix` entry on tiny Fashion-MNIST, with class mismatch and cached copies."""

import mlflow
import numpy as np
import pytest
import yaml

import realmix
from augssl.config import parse_params

from .helpers import ROOT, all_runs, needs_fashion_mnist, run_script

pytestmark = [needs_fashion_mnist, pytest.mark.slow]


def test_realmix_runs_with_split_name_class_mismatch_masking_and_copies(tracking, tmp_path):
    # seed, labels and validation size come from the split name; 50% class mismatch
    params = (f"batch_size=20;unlabelled_batch_size=40;num_epochs=2;epoch_length=4;log_every=2;"
              f"labelled_classes=2,3,4,5,6,7;unlabelled_classes=0,1,6,7;percent_mask=0.25;"
              f"tsa=linear_schedule;aug_copy=2;cache_dir={tmp_path / 'cache'};median_of_last=2;"
              f"beta=0.75;w_match=75;filters=32;augment=cifar10")
    run_script(tracking, "-m", "mlflow", "run", str(ROOT), "-e", "realmix",
               "--env-manager", "local", "-P", "dataset=fashionmnist.2@60-120",
               "-P", "network=smallcnn", "-P", f"params={params}")
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert (run.data.params["seed"], run.data.params["num_labelled_samples"],
            run.data.params["num_validation_samples"]) == ("2", "60", "120")
    # MLflow logged the data set as given; the resolved name sits beside it, no clash
    assert run.data.params["dataset"] == "fashionmnist.2@60-120"
    assert run.data.params["resolved_dataset"] == "fashionmnist"
    metrics = run.data.metrics
    for name in ("train/labelled_loss", "train/unlabelled_loss", "train/w_match",
                 "train/mask_rate", "train/mixup_lambda", "test/accuracy_median_last2",
                 "test/class_accuracy/Pullover"):
        assert name in metrics, name
    assert "test/class_accuracy/Sneaker" in metrics  # class 7 is labelled, 8 and 9 are not
    assert "test/class_accuracy/Bag" not in metrics
    assert metrics["train/mask_rate"] == pytest.approx(0.75)
    assert len(list((tmp_path / "cache").iterdir())) == 1  # the copies, cached once


@pytest.mark.parametrize("method", ["fs_baseline", "fs_mixup"])
def test_supervised_baselines_train_on_the_labelled_images_alone(tracking, method):
    config = parse_params("batch_size=20;num_epochs=2;epoch_length=4;log_every=1;eval_every=4;"
                          "num_labelled_samples=60;num_validation_samples=120;median_of_last=2;"
                          "labelled_classes=2,3,4,5,6,7;num_workers=0",
                          realmix.RealmixConfig, dataset="FashionMNIST", network="smallcnn")
    realmix.training(0, config, method=method)
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert run.data.params["entry"] == method
    client = mlflow.MlflowClient()
    assert "train/unlabelled_loss" not in run.data.metrics
    assert "test/accuracy_median_last2" in run.data.metrics
    lambdas = [m.value for m in client.get_metric_history(run.info.run_id, "train/mixup_lambda")]
    if method == "fs_mixup":
        assert len(lambdas) == 8 and min(lambdas) >= 0.5 and len(set(lambdas)) > 1
    else:
        assert lambdas == []


def test_supervised_baselines_are_entries_of_the_project():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    for method in ("fs_baseline", "fs_mixup"):
        assert f"code/{method}.py" in project["entry_points"][method]["command"]
        assert (ROOT / "code" / f"{method}.py").exists()


def test_realmix_learns_from_a_custom_folder_and_its_unlabeled_images(tracking, tmp_path):
    from PIL import Image

    root = tmp_path / "my photos"
    rng = np.random.default_rng(0)
    files = {"train": 8, "test": 3}
    for split, count in files.items():
        for name in ("cat", "dog"):
            for i in range(count):
                (root / split / name).mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"photo {i}.png")
    (root / "unlabeled").mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
            root / "unlabeled" / f"u{i}.jpg")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    config = parse_params("batch_size=4;unlabelled_batch_size=8;num_epochs=1;epoch_length=3;"
                          "num_labelled_samples=4;num_validation_samples=4;median_of_last=1;"
                          "num_workers=0;log_every=1", realmix.RealmixConfig,
                          dataset=f"folder:{root}", network="smallcnn")
    realmix.training(0, config)
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    assert "train/unlabelled_loss" in run.data.metrics
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing renamed
