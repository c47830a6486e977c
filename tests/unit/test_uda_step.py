"""The UDA step against the official computation: one forward pass over [labelled, clean,
strong (, labelled strong)], one BatchNorm batch, the clean logits detached as the target."""

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import main_uda
from augssl.engine.amp import Precision

K = 3


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(),
                         nn.Linear(8, K))


def _shifted(images: torch.Tensor, step: int, stream: int) -> torch.Tensor:
    """A stand-in augmentation: each view stream shifts the images by its own offset."""
    return images + stream


def _step_output(model, labelled, targets, unlabelled, labelled_consistency: bool) -> dict:
    config = main_uda.UdaConfig(with_TSA=False, labelled_consistency=labelled_consistency)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keeps the weights, not the grads
    prepare = dict.fromkeys(range(4), _shifted)
    step = main_uda.make_uda_step(model, optimizer, Precision("off", torch.device("cpu")), config,
                                  iter([(unlabelled, None, None)]), prepare, total_steps=10)
    return step(SimpleNamespace(state=SimpleNamespace(iteration=1)), (labelled, targets, None))


def _official_loss(model, views, targets, labelled_consistency: bool, detach_target: bool = True):
    logits = model(torch.cat(views)).split([len(v) for v in views])

    def kl(clean, strong):
        target = F.softmax(clean.detach() if detach_target else clean, dim=1)
        return F.kl_div(F.log_softmax(strong, dim=1), target, reduction="batchmean")

    total = F.cross_entropy(logits[0], targets) + kl(logits[1], logits[2])
    if labelled_consistency:
        total = total + kl(logits[0], logits[3])
    return total


def _gradients(model, loss) -> list[torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("labelled_consistency", [False, True])
def test_the_views_share_one_batchnorm_batch_and_no_gradient_reaches_the_target(
        labelled_consistency):
    generator = torch.Generator().manual_seed(1)
    labelled = torch.randn(4, 3, 2, 2, generator=generator)
    unlabelled = torch.randn(6, 3, 2, 2, generator=generator)
    targets = torch.tensor([0, 1, 2, 0])
    views = [labelled + 0, unlabelled + 1, unlabelled + 2]
    if labelled_consistency:
        views.append(labelled + 3)
    model = _model()
    official, leaky = copy.deepcopy(model), copy.deepcopy(model)

    output = _step_output(model, labelled, targets, unlabelled, labelled_consistency)

    loss = _official_loss(official, views, targets, labelled_consistency)
    assert output["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    expected = _gradients(official, loss)
    for got, want in zip((p.grad for p in model.parameters()), expected):
        torch.testing.assert_close(got, want)
    # the running statistics moved once, by the joint batch
    bn, official_bn = model[2], official[2]
    torch.testing.assert_close(bn.running_mean, official_bn.running_mean)
    torch.testing.assert_close(bn.running_var, official_bn.running_var)
    # the check can tell: a target that passes gradient gives other gradients
    undetached = _official_loss(leaky, views, targets, labelled_consistency,
                                detach_target=False)
    leaking = _gradients(leaky, undetached)
    assert any(not torch.allclose(a, b) for a, b in zip(leaking, expected))


def test_entropy_minimisation_sharpens_the_clean_view_with_its_gradient():
    # the official code adds ent_min_coeff * entropy(clean logits), the clean logits not detached
    generator = torch.Generator().manual_seed(2)
    labelled = torch.randn(4, 3, 2, 2, generator=generator)
    unlabelled = torch.randn(6, 3, 2, 2, generator=generator)
    targets = torch.tensor([0, 1, 2, 0])
    model = _model()
    official = copy.deepcopy(model)
    config = main_uda.UdaConfig(with_TSA=False, entropy_weight=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    step = main_uda.make_uda_step(model, optimizer, Precision("off", torch.device("cpu")), config,
                                  iter([(unlabelled, None, None)]),
                                  dict.fromkeys(range(4), _shifted), total_steps=10)
    output = step(SimpleNamespace(state=SimpleNamespace(iteration=1)), (labelled, targets, None))

    views = [labelled + 0, unlabelled + 1, unlabelled + 2]
    clean = official(torch.cat(views)).split([len(v) for v in views])[1]
    probabilities = F.softmax(clean, dim=1)
    clean_entropy = -(probabilities * F.log_softmax(clean, dim=1)).sum(dim=1).mean()
    loss = _official_loss(official, views, targets, labelled_consistency=False)
    loss = loss + 0.5 * clean_entropy
    assert output["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    for got, want in zip((p.grad for p in model.parameters()), _gradients(official, loss)):
        torch.testing.assert_close(got, want)
