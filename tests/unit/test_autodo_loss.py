"""AutoDO's loss model: initial values, the four modes' formulas, gradients, memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from augssl.search.autodo import LossModel, loss_memory_bytes

NUM_CLASSES = 5


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, NUM_CLASSES, (30,), generator=g)
    index = torch.tensor([4, 0, 17, 9, 25, 12])
    logits = torch.randn(len(index), NUM_CLASSES, generator=g)
    return targets, index, logits


def test_weights_start_at_one_and_soft_labels_at_the_smoothed_given_label():
    targets, _, _ = _batch()
    model = LossModel("BOTH", targets, NUM_CLASSES)
    torch.testing.assert_close(model.weights(), torch.ones(30))
    expected = torch.full((30, NUM_CLASSES), 0.05 / NUM_CLASSES)
    expected[torch.arange(30), targets] += 0.95
    torch.testing.assert_close(model.soft_labels(), expected)
    assert LossModel("NONE", targets, NUM_CLASSES).soft_labels() is None


def test_at_init_none_and_wght_are_cross_entropy_and_soft_is_smoothed_cross_entropy_less_entropy():
    targets, index, logits = _batch()
    y = targets[index]
    plain = F.cross_entropy(logits, y)
    for mode in ("NONE", "WGHT"):
        torch.testing.assert_close(LossModel(mode, targets, NUM_CLASSES)(logits, y, index), plain)
    soft = LossModel("SOFT", targets, NUM_CLASSES)
    q = soft.soft_labels()[index]
    entropy = -(q * q.log()).sum(-1).mean()
    torch.testing.assert_close(soft(logits, y, index),
                               F.cross_entropy(logits, y, label_smoothing=0.05) - entropy)


def _moved(model: LossModel) -> LossModel:
    with torch.no_grad():
        if model.weight_logits is not None:
            model.weight_logits.normal_(generator=torch.Generator().manual_seed(1))
        model.soft_logits.normal_(generator=torch.Generator().manual_seed(2))
    return model


def _kl_both_ways(model: LossModel, index, logits) -> tuple[torch.Tensor, torch.Tensor]:
    q = model.soft_labels()[index]
    p = logits.softmax(-1)
    return (q * (q.log() - p.log())).sum(-1), (p * (p.log() - q.log())).sum(-1)


@pytest.mark.parametrize("mode", ["SOFT", "BOTH"])
def test_the_symmetric_loss_is_half_the_sum_of_the_two_kl_directions(mode):
    # the original (custom_models/automodels.py, LossModel with sym): the same soft loss for
    # SOFT and BOTH, 0.5 * (KL(q || p) + KL(p || q)), scaled by the weight
    targets, index, logits = _batch()
    model = _moved(LossModel(mode, targets, NUM_CLASSES, symmetric=True))
    forward_kl, reverse_kl = _kl_both_ways(model, index, logits)
    w = model.weights()[index]
    torch.testing.assert_close(model(logits, targets[index], index),
                               (w * 0.5 * (forward_kl + reverse_kl)).mean())


@pytest.mark.parametrize("mode", ["SOFT", "BOTH"])
def test_without_symmetry_the_soft_loss_is_kl_to_the_soft_labels(mode):
    targets, index, logits = _batch()
    model = _moved(LossModel(mode, targets, NUM_CLASSES))
    assert not model.symmetric
    forward_kl, _ = _kl_both_ways(model, index, logits)
    w = model.weights()[index]
    torch.testing.assert_close(model(logits, targets[index], index), (w * forward_kl).mean())


def test_weights_are_the_scaled_softplus_of_their_logits():
    targets, index, _ = _batch()
    model = _moved(LossModel("BOTH", targets, NUM_CLASSES))
    w = F.softplus(model.weight_logits.detach()[index]) / F.softplus(torch.tensor(0.0))
    torch.testing.assert_close(model.weights()[index], w)


def test_slices_carry_the_gradient_and_the_tables_stay_constant_otherwise():
    targets, index, logits = _batch()
    model = LossModel("BOTH", targets, NUM_CLASSES)
    slices = model.take(index)
    assert [tuple(s.values.shape) for s in slices] == [(6,), (6, NUM_CLASSES)]
    logits = logits.requires_grad_(True)
    model(logits, targets[index], index, slices=slices).backward()
    assert all(s.values.grad is not None and s.values.grad.abs().sum() > 0 for s in slices)
    model(logits, targets[index], index).backward()
    assert model.weight_logits.grad is None and model.soft_logits.grad is None


def test_modes_learn_only_their_tables():
    targets, _, _ = _batch()
    tables = {mode: [n for n, _ in LossModel(mode, targets, NUM_CLASSES).named_parameters()]
              for mode in ("NONE", "WGHT", "SOFT", "BOTH")}
    assert tables == {"NONE": [], "WGHT": ["weight_logits"], "SOFT": ["soft_logits"],
                      "BOTH": ["weight_logits", "soft_logits"]}


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="one of"):
        LossModel("SEP", torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="0..1"):
        LossModel("WGHT", torch.tensor([0, 2]), 2)
    with pytest.raises(IndexError, match="positions in the biased training set"):
        LossModel("WGHT", torch.tensor([0, 1]), 2).take(torch.tensor([2]))


def test_memory_for_imagenet():
    both = loss_memory_bytes(1_281_167, 1000, "BOTH")
    print(f"BOTH loss model for ImageNet: {both / 1e9:.2f} GB with RMSprop state")
    assert loss_memory_bytes(1_281_167, 1000, "BOTH", with_optimizer_state=False) \
        == 1_281_167 * 1001 * 4
    assert both == 10_259_585_336
    assert loss_memory_bytes(1_281_167, 1000, "WGHT") == 1_281_167 * 8
    model = LossModel("BOTH", torch.zeros(50, dtype=torch.long), 7)
    assert loss_memory_bytes(50, 7, with_optimizer_state=False) == \
        sum(t.numel() * t.element_size() for t in model.parameters())
