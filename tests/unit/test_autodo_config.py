"""The autodo entry's parameters: the original's names, implied policies and refused mixes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augssl.config import ConfigError, parse_params
from augssl.search.autodo import draw_biased_split
from autodo import AutodoConfig, LearnedTables


def _config(params: str) -> AutodoConfig:
    return parse_params(params, AutodoConfig, dataset="FashionMNIST", network="smallcnn")


def test_the_original_flag_names_are_accepted():
    config = _config("ir=100;nr=0.1;run=3;aug_model=SEP;los_model=BOTH;hyper_opt=HES")
    assert (config.imbalance_ratio, config.noise_ratio, config.run) == (100.0, 0.1, 3)
    assert (config.aug_model, config.loss_model, config.hyper_opt) == ("SEP", "BOTH", "HES")
    assert (config.hyper_terms, config.hyper_alpha, config.hyper_lr) == (5, 0.01, 0.05)
    assert (config.num_epochs, config.warm_epochs) == (200, 50)


@pytest.mark.parametrize("aug_model, policy", [("NONE", "none"), ("RAND", "randaugment"),
                                                ("AUTO", "autoaugment"), ("SHA", "none")])
def test_the_augmentation_model_sets_the_policy(aug_model, policy):
    extra = ";hyper_opt=HES" if aug_model == "SHA" else ""
    assert _config(f"aug_model={aug_model}{extra}").policy == policy
    assert _config(f"aug_model={aug_model};policy={policy}{extra}").policy == policy


@pytest.mark.parametrize("params, message", [
    ("nr=1.5", r"noise_ratio \(nr\) = 1.5 is out of range: expected 0 <= nr < 1"),
    ("nr=1", r"\(nr=1 would leave no clean label"),
    ("nr=-0.1", r"nr=-0.1 is out of range: expected a value >= 0.0"),
    ("ir=0.5", r"ir=0.5 is out of range: expected a value >= 1.0"),
    ("aug_model=DADA", "DADA is not available yet"),
    ("aug_model=RAND;policy=autoaugment", "contradicts aug_model=RAND"),
    ("hyper_opt=HES", "nothing to learn with aug_model=NONE and loss_model=NONE"),
    ("aug_model=SEP", "aug_model=SEP would stay at the initial values"),
    ("aug_model=SHA;loss_model=WGHT", "aug_model=SHA and loss_model=WGHT would stay"),
    ("aug_model=SEP;hyper_opt=HES;num_epochs=10;warm_epochs=10", "leaves no hyper pass"),
    ("loss_model=SOFT;hyper_opt=HES;backend=gloo", "runs in one process"),
    ("loss_model=SOFT;hyper_opt=HES;hyper_alpha=0", "must both be > 0"),
    ("loss_model=WGHT;hyper_opt=HES;label_smoothing=0.1", "Set label_smoothing=0"),
])
def test_settings_that_cannot_work_are_refused_with_a_reason(params, message):
    with pytest.raises(ConfigError, match=message):
        _config(params)


@pytest.mark.parametrize("bias, symmetric", [("ir=1;nr=0", False), ("ir=2", True),
                                             ("nr=0.1", True)])
def test_the_soft_label_loss_is_symmetric_on_biased_data(bias, symmetric):
    # the original's symmetricKlEnable: imbalance or label noise
    config = _config(f"{bias};loss_model=SOFT;hyper_opt=HES")
    split = draw_biased_split(np.arange(400) % 4, 4, 40, None, config.imbalance_ratio,
                              config.noise_ratio, 0, 0)
    tables = LearnedTables.build(config, split, torch.device("cpu"))
    assert tables.loss_model.symmetric is symmetric


def test_split_seed_holds_the_biased_split_across_seeds():
    from types import SimpleNamespace

    from autodo import biased_split

    bundle = SimpleNamespace(train=SimpleNamespace(targets=np.arange(400) % 4),
                             classes=["a", "b", "c", "d"])

    def drawn(params: str) -> np.ndarray:
        return biased_split(_config(f"ir=2;nr=0.1;num_validation_samples=40;{params}"),
                            bundle).train_indices

    assert not np.array_equal(drawn("seed=0"), drawn("seed=1"))
    np.testing.assert_array_equal(drawn("seed=0;split_seed=5"), drawn("seed=1;split_seed=5"))
