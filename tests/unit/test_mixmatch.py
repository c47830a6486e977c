import numpy as np
import pytest
import torch

from augssl.semisup.mixmatch import (
    confidence_mask,
    decay_weights,
    forward_interleaved,
    frozen_batchnorm_statistics,
    guess_labels,
    masked_squared_error,
    mixup,
    mixup_lambdas,
    ramp,
    sharpen,
    soft_cross_entropy,
)


def test_sharpen_follows_the_power_formula():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    expected = p ** 2 / (p ** 2).sum()
    torch.testing.assert_close(sharpen(p, 0.5), expected)
    torch.testing.assert_close(sharpen(p, 1.0), p)
    assert sharpen(p, 0.1)[0, 0] > 0.99


def test_label_guess_averages_views_then_sharpens_without_gradient():
    a = torch.tensor([[2.0, 0.0]], requires_grad=True)
    b = torch.tensor([[0.0, 0.0]], requires_grad=True)
    guess = guess_labels([a, b], temperature=0.5)
    mean = (torch.softmax(a, 1) + torch.softmax(b, 1)) / 2
    torch.testing.assert_close(guess, sharpen(mean.detach(), 0.5))
    assert not guess.requires_grad


def test_mixup_lambdas_are_drawn_per_sample_and_at_least_a_half():
    # MixMatch's MixMode.augment_pair: Beta(beta, beta) sampled per image, then max(l, 1 - l)
    draws = mixup_lambdas(0.75, 2000, np.random.default_rng(0))
    assert draws.shape == (2000,) and len(np.unique(draws)) > 1000
    assert draws.min() >= 0.5 and draws.max() <= 1.0
    assert 0.75 < draws.mean() < 0.9  # E[max(L, 1-L)] for Beta(.75,.75) is about 0.82


def test_mixup_mixes_each_sample_with_its_own_lambda_targets_like_inputs():
    inputs = torch.arange(4.0).view(4, 1, 1, 1)
    targets = torch.eye(4)
    lam = torch.tensor([0.7, 0.6, 0.9, 0.5])
    order = torch.tensor([1, 0, 3, 2])
    mixed_inputs, mixed_targets = mixup(inputs, targets, lam, order)
    assert mixed_inputs.shape == inputs.shape and mixed_targets.shape == targets.shape
    torch.testing.assert_close(mixed_inputs.flatten(), torch.tensor([0.3, 0.6, 2.1, 2.5]))
    # the target weights reproduce the input: sum_j target_ij * input_j == mixed input i
    torch.testing.assert_close(mixed_targets @ inputs.flatten(), mixed_inputs.flatten())
    torch.testing.assert_close(mixed_targets.max(dim=1).values, lam)


def test_ramp_is_linear_then_flat():
    assert [ramp(s, 10) for s in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0]
    assert ramp(0, 0) == 1.0


def test_confidence_mask_drops_exactly_the_least_confident_fraction():
    guesses = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3], [0.55, 0.45]])
    assert confidence_mask(guesses, 0.5).tolist() == [1.0, 0.0, 1.0, 0.0]
    assert confidence_mask(guesses, 0.25).tolist() == [1.0, 0.0, 1.0, 1.0]
    assert confidence_mask(guesses, 0.0).tolist() == [1.0] * 4


def test_losses():
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    expected = -(targets * torch.log_softmax(logits, 1)).sum(1)
    torch.testing.assert_close(soft_cross_entropy(logits, targets), expected)
    squared = ((torch.softmax(logits, 1) - targets) ** 2).mean(1)
    mask = torch.tensor([1.0, 0.0])
    assert masked_squared_error(logits, targets, mask).item() == pytest.approx(squared[0].item())


def test_frozen_batchnorm_statistics_leave_running_stats_alone():
    bn = torch.nn.BatchNorm1d(2)
    model = torch.nn.Sequential(bn)
    model.train()
    with frozen_batchnorm_statistics(model):
        out = model(torch.randn(8, 2) * 5 + 3)
    assert torch.equal(bn.running_mean, torch.zeros(2)) and bn.num_batches_tracked == 0
    assert out.mean(0).abs().max() < 1e-5  # batch statistics were still used
    model(torch.randn(8, 2) + 3)
    assert bn.running_mean.abs().sum() > 0 and bn.momentum == 0.1


def test_interleaved_forward_gives_every_batch_the_whole_sets_mix():
    # a BatchNorm layer alone: its output shows which batch statistics each sample met
    bn = torch.nn.BatchNorm1d(1, affine=False)
    model = torch.nn.Sequential(bn)
    model.train()
    labelled = torch.full((4, 1), 10.0)
    unlabelled = torch.arange(8.0)[:, None]
    inputs = torch.cat([labelled, unlabelled])
    out = forward_interleaved(model, inputs, batches=3)
    # the outputs come back in the order of the inputs, one per input
    assert out.shape == inputs.shape
    # the labelled samples were not normalised by the labelled batch alone (which would give 0):
    # every forward batch held labelled and unlabelled samples alike
    assert (out[:4] > 0.5).all()
    # the running statistics came from one forward batch, a third of the set holding a third
    # of the labelled samples; its mean lies near the whole set's
    assert bn.num_batches_tracked == 1
    first = inputs[0::3]
    torch.testing.assert_close(bn.running_mean, 0.1 * first.mean(0))
    # with one batch, it is a plain forward pass
    bn.reset_running_stats()
    torch.testing.assert_close(forward_interleaved(model, inputs, batches=1), model(inputs))


def test_decoupled_weight_decay_spares_biases_and_batchnorm():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    weight, bias = model[0].weight.clone(), model[0].bias.clone()
    decay_weights(model, 0.5)
    torch.testing.assert_close(model[0].weight, weight * 0.5)
    torch.testing.assert_close(model[0].bias, bias)
    assert torch.equal(model[1].weight, torch.ones(2))
