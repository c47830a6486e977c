"""Neumann-series implicit hyper-gradients against the exact inverse Hessian.

The reference problem is L2-regularised softmax regression with per-sample loss weights as the
hyper-parameters: small enough to build and invert the exact Hessian of the training loss over
the classifier's weight and bias (theta), in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from augssl.models import build_model
from augssl.search.autodo import (
    AffineAugment,
    LossModel,
    implicit_hypergradient,
    network_hypergradient,
)


def _blobs(n: int, scales: list[float], classes: int, seed: int, spread: float = 1.5):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, len(scales), generator=g, dtype=torch.float64) * spread
    targets = torch.arange(n) % classes
    points = centres[targets] + torch.randn(n, len(scales), generator=g, dtype=torch.float64)
    points = (points - points.mean(0)) / points.std(0)
    return points * torch.tensor(scales, dtype=torch.float64), targets


def _fit(parameters, loss_fn) -> None:
    optimiser = torch.optim.LBFGS(parameters, lr=1, max_iter=300, tolerance_grad=1e-11,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    optimiser.step(closure)


@dataclass
class Problem:
    classifier: nn.Linear
    weights: torch.Tensor        # the hyper-parameters: one loss weight per training point
    train_points: torch.Tensor
    train_targets: torch.Tensor
    val_points: torch.Tensor
    val_targets: torch.Tensor
    l2: float

    @property
    def theta(self) -> list[torch.Tensor]:
        return list(self.classifier.parameters())

    def train_loss(self, weights: torch.Tensor | None = None) -> torch.Tensor:
        weights = self.weights if weights is None else weights
        per_point = F.cross_entropy(self.classifier(self.train_points), self.train_targets,
                                    reduction="none")
        return (weights * per_point).mean() + self.l2 / 2 * sum(p.square().sum()
                                                                 for p in self.theta)

    def val_loss(self) -> torch.Tensor:
        return F.cross_entropy(self.classifier(self.val_points), self.val_targets)

    def refit(self, weights: torch.Tensor) -> float:
        """Validation loss at the optimum of the training loss under ``weights``."""
        _fit(self.theta, lambda: self.train_loss(weights))
        with torch.no_grad():
            return self.val_loss().item()

    def hessian(self) -> torch.Tensor:
        shapes = [p.shape for p in self.theta]
        sizes = [p.numel() for p in self.theta]

        def loss_of_flat(flat: torch.Tensor) -> torch.Tensor:
            weight, bias = (chunk.view(s) for chunk, s in zip(flat.split(sizes), shapes))
            per_point = F.cross_entropy(F.linear(self.train_points, weight, bias),
                                        self.train_targets, reduction="none")
            return (self.weights.detach() * per_point).mean() + self.l2 / 2 * flat.square().sum()

        flat = torch.cat([p.detach().flatten() for p in self.theta])
        return torch.autograd.functional.hessian(loss_of_flat, flat)

    def exact_hypergradient(self) -> torch.Tensor:
        """-d2L_T/(dlambda dtheta) . H^-1 . grad_theta L_V, with H inverted exactly."""
        val_grad = torch.cat([g.flatten() for g in torch.autograd.grad(self.val_loss(),
                                                                       self.theta)])
        solved = torch.linalg.solve(self.hessian(), val_grad)
        train_grad = torch.cat([g.flatten() for g in torch.autograd.grad(
            self.train_loss(), self.theta, create_graph=True)])
        (mixed,) = torch.autograd.grad(train_grad @ solved, self.weights)
        return -mixed

    def neumann(self, **settings) -> torch.Tensor:
        (hyper,) = implicit_hypergradient(self.train_loss(), self.val_loss(), self.theta,
                                          [self.weights], **settings)
        return hyper


def _problem(scales: list[float], classes: int, l2: float, seed: int = 0) -> Problem:
    points, targets = _blobs(500, scales, classes, seed)
    torch.manual_seed(seed)
    problem = Problem(nn.Linear(len(scales), classes).double(),
                      torch.ones(300, dtype=torch.float64, requires_grad=True),
                      points[:300], targets[:300], points[300:], targets[300:], l2)
    _fit(problem.theta, lambda: problem.train_loss(problem.weights.detach()))
    return problem


@pytest.fixture(scope="module")
def ill_conditioned() -> Problem:
    """Anisotropic 3-D features, four classes, weak L2: condition number about 350."""
    return _problem([3.0, 0.3, 1.0], classes=4, l2=0.003)


@pytest.fixture(scope="module")
def well_conditioned() -> Problem:
    """Standardised 2-D features, two classes, L2 0.1: condition number about 3.5."""
    return _problem([1.0, 1.0], classes=2, l2=0.1)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a, b, dim=0).item()


def test_neumann_series_converges_to_the_exact_implicit_hypergradient(ill_conditioned):
    eigenvalues = torch.linalg.eigvalsh(ill_conditioned.hessian())
    assert eigenvalues[-1] / eigenvalues[0] > 100          # the series has work to do
    alpha = 1 / eigenvalues[-1].item()                     # < 2 / lambda_max: converges
    exact = ill_conditioned.exact_hypergradient()
    few = ill_conditioned.neumann(terms=5, alpha=alpha)
    many = ill_conditioned.neumann(terms=200, alpha=alpha)
    print(f"ill-conditioned: cosine {_cosine(few, exact):.4f} after 5 terms, "
          f"{_cosine(many, exact):.4f} after 200")
    assert _cosine(many, exact) >= 0.99
    assert _cosine(many, exact) > _cosine(few, exact)
    # Times alpha, the truncated sum estimates the hyper-gradient itself (slightly short).
    assert 0.9 <= (alpha * many).norm() / exact.norm() <= 1.01


def test_the_exact_reference_is_the_slope_of_the_validation_loss(well_conditioned):
    problem = well_conditioned
    exact = problem.exact_hypergradient()
    direction = exact / exact.norm()
    saved = [p.detach().clone() for p in problem.theta]
    step = 0.05
    up = problem.refit(problem.weights.detach() + step * direction)
    down = problem.refit(problem.weights.detach() - step * direction)
    with torch.no_grad():
        for p, value in zip(problem.theta, saved):
            p.copy_(value)
    slope = (up - down) / (2 * step)
    assert slope > 0                                       # descent on it lowers L_V
    assert slope == pytest.approx(exact.norm().item(), rel=0.02)


def test_default_terms_and_alpha_point_the_right_way_only_on_a_well_conditioned_hessian(
        well_conditioned, ill_conditioned):
    good = _cosine(well_conditioned.neumann(), well_conditioned.exact_hypergradient())
    poor = _cosine(ill_conditioned.neumann(), ill_conditioned.exact_hypergradient())
    print(f"terms=5, alpha=0.01: cosine {good:.4f} (condition ~3.5), {poor:.4f} (~350)")
    assert good >= 0.95
    # Documented limit: with alpha * lambda_max << 1 the five terms barely use the Hessian.
    assert poor < 0.7


class _IdentityFeatures(nn.Module):
    """A 'network' whose features are its inputs, so its classifier is softmax regression."""

    def __init__(self, dims: int, classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(dims, classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)


def test_hypergradient_of_loss_weights_points_at_the_noisy_labels():
    points, clean = _blobs(500, [1.0, 1.0], classes=3, seed=1, spread=2.5)
    points, clean = points.float(), clean
    g = torch.Generator().manual_seed(0)
    noisy = clean.clone()
    flipped = torch.randperm(300, generator=g)[:60]
    noisy[flipped] = (clean[flipped] + torch.randint(1, 3, (60,), generator=g)) % 3
    torch.manual_seed(0)
    model = _IdentityFeatures(2, 3)
    _fit(list(model.parameters()), lambda: F.cross_entropy(model(points[:300]), noisy[:300]))
    loss_model = LossModel("WGHT", noisy[:300], 3)
    step = network_hypergradient(model, None, loss_model, points[:300], noisy[:300],
                                 torch.arange(300), points[300:], clean[300:],
                                 torch.Generator().manual_seed(0))
    (grad,) = step.grads
    is_noisy = torch.zeros(300, dtype=torch.bool)
    is_noisy[flipped] = True
    # Probability that a noisy point's hyper-gradient exceeds a clean point's (ROC AUC):
    # a descent step then lowers the noisy points' weights more.
    auc = (grad[is_noisy][:, None] > grad[~is_noisy][None, :]).float().mean().item()
    print(f"noisy-vs-clean AUC of the weight hyper-gradient: {auc:.3f}")
    assert auc > 0.9
    assert step.train_loss > step.val_loss


def test_the_network_hypergradient_differentiates_the_classifier_weight_but_not_its_bias():
    # the original (implicit-augment.py / hyperHesTrain): theta is the '.weight' of the 'cls'
    # layer
    points, targets = _blobs(60, [1.0, 1.0], classes=3, seed=2)
    points = points.float()
    torch.manual_seed(0)
    model = _IdentityFeatures(2, 3)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.5, -1.0, 0.3]))
    loss_model = LossModel("WGHT", targets[:40], 3)
    step = network_hypergradient(model, None, loss_model, points[:40], targets[:40],
                                 torch.arange(40), points[40:], targets[40:],
                                 torch.Generator().manual_seed(0))

    def expected(theta: list[torch.Tensor]) -> torch.Tensor:
        (piece,) = loss_model.take(torch.arange(40))
        train_loss = loss_model(model(points[:40]), targets[:40], torch.arange(40),
                                slices=[piece])
        val_loss = F.cross_entropy(model(points[40:]), targets[40:])
        return implicit_hypergradient(train_loss, val_loss, theta, [piece.values])[0]

    torch.testing.assert_close(step.grads[0], expected([model.classifier.weight]))
    assert not torch.allclose(step.grads[0], expected(list(model.classifier.parameters())))


def test_hypergradient_reaches_every_augmentation_parameter_through_a_cnn():
    torch.manual_seed(0)
    model = build_model("smallcnn", num_classes=4, in_channels=1).eval()
    g = torch.Generator().manual_seed(0)
    images, val_images = torch.randn(16, 1, 28, 28, generator=g), torch.randn(8, 1, 28, 28,
                                                                             generator=g)
    targets, val_targets = torch.arange(16) % 4, torch.arange(8) % 4
    augment = AffineAugment("SHA")
    with torch.no_grad():
        augment.table[..., 0] = 2.0        # each op applied to most of the 16 images
    loss_model = LossModel("BOTH", torch.arange(40) % 4, 4)
    index = torch.arange(10, 26)
    before = [p.detach().clone() for p in model.parameters()]
    step = network_hypergradient(model, augment, loss_model, images, targets, index,
                                 val_images, val_targets, torch.Generator().manual_seed(3))
    assert [tuple(g.shape) for g in step.grads] == [(16, 7, 2), (16,), (16, 4)]
    assert all(torch.isfinite(g).all() for g in step.grads)
    assert (step.grads[0].sum(0).abs() > 0).all()
    assert (step.grads[1].abs() > 0).all() and (step.grads[2].abs().sum(1) > 0).all()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_wiring_mistakes_are_explained():
    model = _IdentityFeatures(2, 2)
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="nothing to learn"):
        network_hypergradient(model, None, LossModel("NONE", y, 2), x, y, torch.arange(4), x, y,
                              torch.Generator())
    stray = torch.ones(4, requires_grad=True)
    with pytest.raises(ValueError, match="do not affect the training loss"):
        implicit_hypergradient(F.cross_entropy(model(x), y) + stray.sum() ** 2,
                               F.cross_entropy(model(x), y), list(model.parameters()), [stray])
