"""`predict` on a folder of real Fashion-MNIST images, with a model trained for a few steps."""

import csv

import numpy as np
import pytest

import train
from augssl.config import parse_params

from .helpers import ROOT, all_runs, needs_fashion_mnist, run_script, tiny, write_image_folder

pytestmark = [needs_fashion_mnist, pytest.mark.slow]


@pytest.fixture
def trained_run(tracking):
    train.training(0, parse_params(tiny(num_epochs=1, eval_every=1), train.TrainConfig,
                                   dataset="FashionMNIST", network="smallcnn"))
    (run,) = all_runs()
    return run


def test_predict_writes_csv_and_npy_and_reports_accuracy(tracking, trained_run, tmp_path):
    classes = write_image_folder(tmp_path / "images")
    output = tmp_path / "out" / "predictions"
    result = run_script(tracking, "-m", "mlflow", "run", str(ROOT), "-e", "predict",
                        "--env-manager", "local", "-P", f"model={trained_run.info.run_id}",
                        "-P", f"images={tmp_path / 'images'}", "-P", f"output={output}")
    assert "accuracy" in result.stdout + result.stderr
    rows = list(csv.reader(output.with_suffix(".csv").open()))
    assert rows[0] == ["path", "class"] + [f"p_{name}" for name in classes]
    assert len(rows) == 1 + 30
    probabilities = np.load(output.with_suffix(".npy"))
    assert probabilities.shape == (30, 10)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    predicted = [row[1] for row in rows[1:]]
    assert set(predicted) <= set(classes)
    assert [classes[i] for i in probabilities.argmax(1)] == predicted


def test_predict_refuses_images_or_classes_the_model_does_not_take(tracking, trained_run,
                                                                   tmp_path):
    model = f"runs:/{trained_run.info.run_id}/model"
    write_image_folder(tmp_path / "big", per_class=1, size=32)
    result = run_script(tracking, "code/predict.py", model, str(tmp_path / "big"), check=False)
    assert result.returncode == 2 and "takes 28x28 images" in result.stderr
    (tmp_path / "other" / "zebra").mkdir(parents=True)
    result = run_script(tracking, "code/predict.py", model, str(tmp_path / "other"), check=False)
    assert result.returncode == 2 and "does not know: zebra" in result.stderr
    result = run_script(tracking, "code/predict.py", "0123456789abcdef", str(tmp_path / "big"),
                        check=False)
    assert result.returncode == 2 and "no MLflow run with id" in result.stderr
