"""What the training loop evaluates: validation, test, and a fixed subset of the labelled images."""

import numpy as np

from augssl.config import parse_params
from augssl.engine.config import TrainingConfig
from augssl.engine.session import train_eval_rows


def _config(params: str) -> TrainingConfig:
    return parse_params(params, TrainingConfig, dataset="FashionMNIST", network="smallcnn")


def test_train_metrics_use_all_labelled_images_when_few():
    labelled = np.array([5, 3, 9, 1])
    np.testing.assert_array_equal(train_eval_rows(labelled, _config("")), [1, 3, 5, 9])


def test_train_metrics_use_a_fixed_seeded_subset_of_a_large_labelled_set():
    labelled = np.arange(100, 20100)
    config = _config("train_eval_samples=500;seed=4")
    rows = train_eval_rows(labelled, config)
    assert len(rows) == 500 and len(set(rows)) == 500 and set(rows) <= set(labelled)
    np.testing.assert_array_equal(rows, train_eval_rows(labelled, config))
    other = train_eval_rows(labelled, _config("train_eval_samples=500;seed=5"))
    assert not np.array_equal(rows, other)


def test_train_metrics_can_be_turned_off():
    assert len(train_eval_rows(np.arange(10), _config("train_eval_samples=0"))) == 0
