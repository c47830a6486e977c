"""Forking the shared weights for one policy evaluation, and the evaluation's reward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from augssl.search.aws import best_mean_reward, fork_model


def tiny_cnn() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, stride=2, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        )


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_the_copy_learns_and_the_shared_weights_stay_bit_identical():
    shared = tiny_cnn()
    before = snapshot(shared)
    fork = fork_model(shared, lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9))
    assert all(torch.equal(fork.model.state_dict()[name], tensor)
               for name, tensor in before.items())
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(8, 3, 16, 16, generator=generator)
    targets = torch.randint(0, 3, (8,), generator=generator)
    for _ in range(3):
        fork.optimizer.zero_grad()
        nn.functional.cross_entropy(fork.model(images), targets).backward()
        fork.optimizer.step()
    after_copy = fork.model.state_dict()
    changed = [name for name, tensor in before.items() if not torch.equal(after_copy[name], tensor)]
    assert {"0.weight", "3.weight", "6.weight", "1.running_mean"} <= set(changed), (
        "the copy must learn"
    )
    for name, tensor in shared.state_dict().items():
        assert torch.equal(tensor, before[name]), f"shared {name} changed"
    assert all(parameter.grad is None for parameter in shared.parameters())


def test_an_optimiser_on_the_shared_weights_is_refused():
    shared = tiny_cnn()
    with pytest.raises(ValueError, match="do not belong to the model copy"):
        fork_model(shared, lambda params: torch.optim.SGD(shared.parameters(), lr=0.1))


def test_fork_moves_the_copy_to_the_requested_device():
    shared = tiny_cnn()
    fork = fork_model(shared, lambda params: torch.optim.Adam(params), device="meta")
    assert all(parameter.device.type == "meta" for parameter in fork.model.parameters())
    assert all(parameter.device.type == "cpu" for parameter in shared.parameters())
    optimised = {id(p) for group in fork.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in fork.model.parameters()}


def test_reward_is_the_mean_of_the_best_two_accuracies():
    assert best_mean_reward([0.50, 0.90, 0.70, 0.80]) == pytest.approx(0.85)
    assert best_mean_reward([0.6]) == pytest.approx(0.6)
    assert best_mean_reward([0.1, 0.4, 0.3], best=1) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="at least one validation accuracy"):
        best_mean_reward([])
