from types import SimpleNamespace

import numpy as np
import pytest
import torch

from augssl.config import ConfigError, parse_params
from augssl.engine.amp import Precision
from augssl.semisup.mixmatch import confidence_mask, guess_labels, masked_squared_error, mixup
from realmix import CopyViews, RealmixConfig, expand_split_name, make_realmix_step, mixup_draw


def test_the_unlabelled_batch_is_the_labelled_batch_unless_given():
    # the original has one batch size for both (its interleave needs them equal)
    default = parse_params("batch_size=32", RealmixConfig, dataset="CIFAR10",
                           network="wideresnet")
    assert default.unlabelled_images_per_step == 32
    given = parse_params("batch_size=32;unlabelled_batch_size=96", RealmixConfig,
                         dataset="CIFAR10", network="wideresnet")
    assert given.unlabelled_images_per_step == 96


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


def _config(params: str = "") -> RealmixConfig:
    return parse_params(params, RealmixConfig, dataset="CIFAR10", network="wideresnet")


def test_the_mixup_draw_gives_each_sample_its_own_lambda_and_repeats_for_a_step():
    lam, order = mixup_draw(_config(), step=5, count=64, device=torch.device("cpu"))
    assert lam.shape == (64,) and len(set(lam.tolist())) > 32
    assert lam.min() >= 0.5 and lam.max() <= 1.0
    assert sorted(order.tolist()) == list(range(64))
    again, same_order = mixup_draw(_config(), step=5, count=64, device=torch.device("cpu"))
    assert torch.equal(lam, again) and torch.equal(order, same_order)  # a resumed run mixes alike


def _one_step(config: RealmixConfig, iteration: int, total_steps: int, labelled, unlabelled):
    """One realmix step of a 2-class linear model (logits = the image's two pixels), no update."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))
    step = make_realmix_step(model, torch.optim.SGD(model.parameters(), lr=0.0),
                             Precision("off", torch.device("cpu")), config,
                             iter([(unlabelled,)]), lambda images, t, k: images, total_steps,
                             num_classes=2)
    return model, step(SimpleNamespace(state=SimpleNamespace(iteration=iteration)), labelled)


def test_the_confidence_mask_ranks_the_predictions_on_the_mixed_unlabelled_images():
    # the original's percent_confidence_mask_unsup ranks softmax(logits_y), logits_y being the
    # model's outputs on the mixed unlabelled images (all views together)
    config = _config("percent_mask=0.5;seed=1")
    x = torch.tensor([[3.0, 0.0], [0.0, 3.0]]).view(2, 2, 1, 1)
    y = torch.tensor([0, 1])
    views = torch.tensor([[[4.0, 0.0], [0.0, 0.0]],    # image 0: one sure view, one flat
                          [[1.0, 0.0], [1.2, 0.0]]])   # image 1: two fairly sure views
    views = views.view(2, 2, 2, 1, 1)
    model, metrics = _one_step(config, 1, 100, (x, y, None), views)
    with torch.no_grad():
        guess = guess_labels([model(views[:, 0]), model(views[:, 1])], config.T)
        inputs = torch.cat([x, views[:, 0], views[:, 1]])
        targets = torch.cat([torch.eye(2)[y], guess, guess])
        lam, order = mixup_draw(config, 1, len(inputs), torch.device("cpu"))
        mixed, mixed_targets = mixup(inputs, targets, lam, order)
        logits = model(mixed[2:])
        unmixed_logits = model(inputs[2:])
    predicted_mask = confidence_mask(torch.softmax(logits, 1), 0.5)
    # the batch tells the ranking apart from that of the guesses and of the unmixed views
    assert not torch.equal(predicted_mask, confidence_mask(guess, 0.5).repeat(2))
    assert not torch.equal(predicted_mask, confidence_mask(torch.softmax(unmixed_logits, 1), 0.5))
    expected = masked_squared_error(logits, mixed_targets[2:], predicted_mask)
    assert metrics["unlabelled_loss"].item() == pytest.approx(expected.item())
    assert metrics["mask_rate"].item() == 0.5


def test_the_default_ramp_keeps_a_short_run_well_below_full_weight_early_on():
    config = _config()
    x, y = torch.zeros(2, 2, 1, 1), torch.tensor([0, 1])
    _, metrics = _one_step(config, 30, 600, (x, y, None), torch.zeros(2, 2, 2, 1, 1))
    assert metrics["w_match"] <= 0.25 * config.w_match
    _, metrics = _one_step(config, 600, 600, (x, y, None), torch.zeros(2, 2, 2, 1, 1))
    assert metrics["w_match"] == config.w_match
