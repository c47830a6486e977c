import numpy as np
import pytest
import torch

from realmix import CopyViews, RealmixConfig, expand_split_name
from augssl.config import ConfigError, parse_params


def test_the_original_split_names_expand_to_params():
    assert expand_split_name(["cifar10_aug50.3@250-500", "wideresnet", "--params", "beta=0.5"]) \
        == ["cifar10", "wideresnet", "--params",
            "seed=3;num_labelled_samples=250;num_validation_samples=500;aug_copy=50;beta=0.5"]
    assert expand_split_name(["svhn.1@1000", "wideresnet"]) == [
        "svhn", "wideresnet", "--params", "seed=1;num_labelled_samples=1000"]
    assert expand_split_name(["CIFAR10", "wideresnet"]) == ["CIFAR10", "wideresnet"]


def test_original_flags_are_params():
    config = parse_params("augment=cutout;lr=0.001;ema=0.99;tsa=exp_schedule;filters=32",
                          RealmixConfig, dataset="CIFAR10", network="wideresnet")
    assert (config.policy, config.learning_rate, config.ema_decay, config.tsa) == (
        "cutout", 0.001, 0.99, "exp_schedule")
    with pytest.raises(ConfigError, match="aug_copy=1 is fewer than nu=2"):
        parse_params("aug_copy=1", RealmixConfig, dataset="CIFAR10", network="wideresnet")


def test_copy_views_give_each_image_different_copies_reproducibly():
    copies = np.stack([np.full((5, 2, 2, 1), k, np.uint8) for k in range(4)])
    views = CopyViews(copies, nu=2, seed=0)
    batch = views[torch.tensor([0, 3, 4])]
    assert batch.shape == (3, 2, 1, 2, 2)
    assert (batch[:, 0] != batch[:, 1]).all()
    assert torch.equal(batch, views[torch.tensor([0, 3, 4])])
