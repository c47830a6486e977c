"""FixMatch's pseudo-label loss and mask, its step against the reference computation, and the
optimiser pieces it brings (the cos(7 pi k / 16 K) schedule, no weight decay on 1-D parameters)."""

import copy
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fixmatch
from augssl.engine.amp import Precision
from augssl.engine.optim import build_optimizer, lr_factor, weight_decay_groups
from augssl.semisup.fixmatch import pseudo_label_accuracy, pseudo_label_loss

K = 3


def test_one_confident_sample_passes_the_threshold_and_the_other_does_not():
    # softmax tops: e^5 / (e^5 + 2) = 0.987 passes 0.95; the second, 0.51, does not
    weak = torch.tensor([[5.0, 0.0, 0.0], [1.0, 0.5, 0.0]])
    strong = torch.tensor([[0.2, 1.0, -0.3], [0.0, 2.0, 0.0]])
    loss, mask, pseudo_labels = pseudo_label_loss(weak, strong, threshold=0.95)
    assert mask.tolist() == [1.0, 0.0]
    assert pseudo_labels.tolist() == [0, 0]
    # averaged over the whole batch: the masked sample counts as 0, not left out of the mean
    expected = F.cross_entropy(strong[:1], torch.tensor([0])) / 2
    assert loss.item() == pytest.approx(expected.item())


def test_a_prediction_exactly_at_the_threshold_passes():
    weak = torch.zeros(1, 2)  # top probability 0.5
    assert pseudo_label_loss(weak, torch.zeros(1, 2), threshold=0.5).mask.item() == 1.0


def test_the_temperature_moves_the_mask_not_the_pseudo_label():
    weak = torch.tensor([[3.0, 0.0, 0.0]])  # 0.909 at T = 1, 0.995 at T = 0.5
    strong = torch.randn(1, K)
    plain = pseudo_label_loss(weak, strong, threshold=0.95, temperature=1.0)
    sharp = pseudo_label_loss(weak, strong, threshold=0.95, temperature=0.5)
    assert (plain.mask.item(), sharp.mask.item()) == (0.0, 1.0)
    assert plain.pseudo_labels.tolist() == sharp.pseudo_labels.tolist() == [0]


def test_no_gradient_flows_through_the_pseudo_label():
    weak = torch.tensor([[5.0, 0.0, 0.0], [1.0, 0.5, 0.0]], requires_grad=True)
    strong = torch.tensor([[0.2, 1.0, -0.3], [0.0, 2.0, 0.0]], requires_grad=True)
    pseudo_label_loss(weak, strong, threshold=0.95).loss.backward()
    assert weak.grad is None
    # the strong view of the passing sample learns; the masked one gets exactly nothing
    assert strong.grad[0].abs().sum() > 0
    assert torch.equal(strong.grad[1], torch.zeros(K))


def test_pseudo_label_accuracy_counts_the_pseudo_labels_the_loss_uses():
    pseudo_labels = torch.tensor([0, 1, 2, 1])
    true_labels = torch.tensor([0, 1, 0, 0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert pseudo_label_accuracy(pseudo_labels, true_labels, mask).item() == pytest.approx(2 / 3)
    assert math.isnan(pseudo_label_accuracy(pseudo_labels, true_labels, torch.zeros(4)).item())


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(),
                         nn.Linear(8, K))


def _shifted(images: torch.Tensor, step: int, stream: int) -> torch.Tensor:
    """A stand-in augmentation: each view stream shifts the images by its own offset."""
    return images + stream


def test_the_step_is_the_reference_computation_over_one_batchnorm_batch():
    generator = torch.Generator().manual_seed(1)
    labelled = torch.randn(4, 3, 2, 2, generator=generator)
    unlabelled = torch.randn(8, 3, 2, 2, generator=generator)
    targets = torch.tensor([0, 1, 2, 0])
    hidden_labels = torch.randint(0, K, (8,), generator=generator)
    views = [labelled + fixmatch.LABELLED, unlabelled + fixmatch.WEAK,
             unlabelled + fixmatch.STRONG]
    model = _model()
    reference = copy.deepcopy(model)

    # the reference: one forward pass, then Lx + lambda_u * Lu with a detached hard pseudo-label
    logits_x, logits_w, logits_s = reference(torch.cat(views)).split([4, 8, 8])
    confidence, pseudo = torch.softmax(logits_w.detach() / 0.7, dim=1).max(dim=1)
    threshold = confidence.median().item()  # some images pass, some do not
    mask = confidence.ge(threshold).float()
    assert 0 < mask.mean() < 1
    lu = (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean()
    loss = F.cross_entropy(logits_x, targets) + 2.0 * lu
    reference.zero_grad()
    loss.backward()

    config = fixmatch.FixmatchConfig(threshold=threshold, T=0.7, lambda_u=2.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keeps the weights, not the grads
    step = fixmatch.make_fixmatch_step(model, optimizer, Precision("off", torch.device("cpu")),
                                       config, iter([(unlabelled, hidden_labels, None)]),
                                       dict.fromkeys(range(3), _shifted))
    output = step(SimpleNamespace(state=SimpleNamespace(iteration=1)), (labelled, targets, None))

    assert output["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert output["unsupervised_loss"].item() == pytest.approx(lu.item(), rel=1e-5)
    assert output["mask_rate"].item() == pytest.approx(mask.mean().item())
    right = ((pseudo == hidden_labels).float() * mask).sum() / mask.sum()
    assert output["pseudo_label_accuracy"].item() == pytest.approx(right.item())
    for got, want in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(got.grad, want.grad)
    # the running statistics moved once, by the joint batch
    torch.testing.assert_close(model[2].running_mean, reference[2].running_mean)
    torch.testing.assert_close(model[2].running_var, reference[2].running_var)


def test_the_fixmatch_schedule_is_cos_7_pi_k_over_16_k():
    # the shared cosine cannot be it: ending at cos(7 pi / 16) too, it is lower in the middle
    for k in (0, 250, 500, 1000):
        assert lr_factor(k, 1000, 0, "cosine_7_16", 0.004) == pytest.approx(
            math.cos(7 * math.pi * k / (16 * 1000)))
    end = math.cos(7 * math.pi / 16)
    assert lr_factor(500, 1000, 0, "cosine", end) < lr_factor(500, 1000, 0, "cosine_7_16", 0.0)
    assert lr_factor(4, 110, 10, "cosine_7_16", 0.004) == pytest.approx(0.5)  # warm-up
    assert lr_factor(60, 110, 10, "cosine_7_16", 0.004) == pytest.approx(math.cos(7 * math.pi / 32))


def test_weight_decay_skips_biases_and_batchnorm():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, K))
    optimizer = build_optimizer(fixmatch.FixmatchConfig(), weight_decay_groups(model))
    decayed, exempt = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and exempt["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert len(exempt["params"]) == 4  # conv bias, BatchNorm scale and shift, linear bias
