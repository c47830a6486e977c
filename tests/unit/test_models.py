"""Model zoo contract: shapes, parameter counts, stochastic layers, name errors.

Shape checks run on the ``meta`` device, which applies the same shape rules as
a real device without computing anything, so the full size/channel/class matrix
and the full-size networks (WRN-28-10, the wide shake-shake nets,
PyramidNet-272) stay cheap on a CPU.  Values and gradients are checked with a
real forward pass of every network small enough for a CPU (the generic
"wideresnet" and "pyramidnet" families in shrunken form).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from augssl.models import MODEL_NAMES, build_model, check_model_name, model_options
from augssl.models.fastresnet import LOGIT_SCALE
from augssl.models.pyramidnet import ShakeDropScale, shake_drop
from augssl.models.shakeshake import ShakeShakeMix

NUM_CLASSES = (7, 100)
IN_CHANNELS = (1, 3)
IMAGE_SIZES = (28, 32)

# Options that shrink the generic families so they run for real on a CPU.
SMALL_OPTIONS = {"pyramidnet": {"depth": 11, "alpha": 12}, "wideresnet": {"depth": 10, "width": 1}}
META_ONLY = ("wideresnet28-10", "shakeshake26_2x96d", "shakeshake26_2x112d", "pyramidnet272")
RUNNABLE = tuple(name for name in MODEL_NAMES if name not in META_ONLY)

# Published sizes for 10 classes (WRN paper, Shake-Shake paper, AutoAugment / ShakeDrop papers).
PUBLISHED_PARAMETERS = {
    "wideresnet28-2": 1.47e6,
    "wideresnet28-10": 36.5e6,
    "wideresnet40-2": 2.2e6,
    "shakeshake26_2x32d": 2.9e6,
    "shakeshake26_2x96d": 26.2e6,
    "shakeshake26_2x112d": 35.6e6,
    "pyramidnet272": 26.0e6,
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _small_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    return build_model(name, num_classes, in_channels, **SMALL_OPTIONS.get(name, {}))


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(module for module in model.modules() if isinstance(module, nn.Conv2d))


def _parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_model_names_cover_every_requested_family():
    assert set(MODEL_NAMES) == {
        "smallcnn", "smallcnn2x", "fastresnet", "wideresnet", "wideresnet28-2", "wideresnet28-10",
        "wideresnet40-2",
        "resnet18", "resnet50", "shakeshake26_2x32d", "shakeshake26_2x96d", "shakeshake26_2x112d",
        "pyramidnet", "pyramidnet272",
    }


@pytest.mark.parametrize("name", RUNNABLE)
@pytest.mark.parametrize("num_classes", NUM_CLASSES)
@pytest.mark.parametrize("in_channels", IN_CHANNELS)
def test_output_shapes_for_every_size_combination(name, num_classes, in_channels):
    with torch.device("meta"):
        model = _small_model(name, num_classes, in_channels).eval()
        for size in IMAGE_SIZES:
            # forward() is classifier(forward_features()); the real-forward test checks that
            # identity.
            features = model.forward_features(torch.empty(2, in_channels, size, size))
            assert features.shape == (2, model.feature_dim)
            assert model.classifier(features).shape == (2, num_classes)
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.out_features == num_classes
    assert _first_conv(model).in_channels == in_channels


@pytest.mark.parametrize(
    "name, num_classes, in_channels, size",
    [
        ("wideresnet28-10", 7, 1, 28),
        ("shakeshake26_2x96d", 100, 3, 32),
        ("shakeshake26_2x112d", 7, 1, 28),
        ("pyramidnet272", 100, 3, 32),
    ],
)
def test_full_size_networks_propagate_shapes(name, num_classes, in_channels, size):
    with torch.device("meta"):
        model = build_model(name, num_classes, in_channels).eval()
        logits = model(torch.empty(2, in_channels, size, size))
    assert logits.shape == (2, num_classes)
    assert isinstance(model.classifier, nn.Linear)
    assert _first_conv(model).in_channels == in_channels


@pytest.mark.parametrize("name", RUNNABLE)
def test_real_forward_is_classifier_of_features_and_gradient_reaches_first_conv(name):
    model = _small_model(name, 5, 1).eval()
    # 16x16 keeps the big CPU-runnable nets fast; sizes themselves are covered above.
    images = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        logits = model(images)
        assert torch.isfinite(logits).all()
        torch.testing.assert_close(model.classifier(model.forward_features(images)), logits)
    model.train()
    nn.functional.cross_entropy(model(images), torch.tensor([0, 4])).backward()
    gradient = _first_conv(model).weight.grad
    assert gradient is not None
    assert torch.isfinite(gradient).all()
    assert gradient.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_parameter_counts_match_published_sizes(name):
    with torch.device("meta"):
        model = build_model(name, num_classes=10)
    assert _parameter_count(model) == pytest.approx(PUBLISHED_PARAMETERS[name], rel=0.02)


def test_smallcnn_stays_small():
    assert _parameter_count(build_model("smallcnn", 10, in_channels=1)) < 1_000_000


def test_smallcnn2x_doubles_every_block():
    small, wide = (build_model(name, 10, in_channels=1) for name in ("smallcnn", "smallcnn2x"))
    widths = [[conv.out_channels for conv in model.modules() if isinstance(conv, nn.Conv2d)]
              for model in (small, wide)]
    assert widths == [[32, 64, 128], [64, 128, 256]]
    assert wide.feature_dim == 2 * small.feature_dim


def test_shake_shake_is_random_in_training_and_deterministic_in_eval():
    model = build_model("shakeshake26_2x32d", 7, 3).train()
    images = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        first, second = model(images), model(images)
    assert not torch.allclose(first, second)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), model(images), rtol=0, atol=0)


def test_shake_shake_eval_block_averages_its_branches():
    block = build_model("shakeshake26_2x32d", 7).features[3].eval()
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        expected = block.shortcut(x) + 0.5 * (block.branch1(x) + block.branch2(x))
        torch.testing.assert_close(block(x), expected)


def test_shake_shake_mix_uses_alpha_forward_and_beta_backward():
    x1 = torch.randn(3, 2, 4, 4, requires_grad=True)
    x2 = torch.randn(3, 2, 4, 4, requires_grad=True)
    alpha = torch.tensor([0.1, 0.5, 0.9]).view(3, 1, 1, 1)
    beta = torch.tensor([0.8, 0.3, 0.2]).view(3, 1, 1, 1)
    mixed = ShakeShakeMix.apply(x1, x2, alpha, beta)
    torch.testing.assert_close(mixed, alpha * x1 + (1 - alpha) * x2)
    mixed.sum().backward()
    torch.testing.assert_close(x1.grad, beta.expand_as(x1))
    torch.testing.assert_close(x2.grad, (1 - beta).expand_as(x2))


def test_shake_drop_scales_by_gate_alpha_forward_and_beta_backward():
    x = torch.ones(2, 3, 2, 2, requires_grad=True)
    gate = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)
    alpha = torch.tensor([-0.7, -0.4]).view(2, 1, 1, 1)
    beta = torch.tensor([0.9, 0.25]).view(2, 1, 1, 1)
    out = ShakeDropScale.apply(x, gate, alpha, beta)
    # A kept sample passes unchanged; a dropped one is scaled by alpha forward, beta backward.
    torch.testing.assert_close(out[0], torch.ones(3, 2, 2))
    torch.testing.assert_close(out[1], torch.full((3, 2, 2), -0.4))
    out.sum().backward()
    torch.testing.assert_close(x.grad[0], torch.ones(3, 2, 2))
    torch.testing.assert_close(x.grad[1], torch.full((3, 2, 2), 0.25))


def test_shake_drop_eval_scales_by_survival_probability():
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(shake_drop(x, 0.75, training=False), 0.75 * x)


def test_shake_drop_survival_probability_decays_linearly_to_one_half():
    model = build_model("pyramidnet", 10, depth=29, alpha=24)  # 9 bottleneck blocks
    probabilities = [block.survival_probability for block in model.features
                     if hasattr(block, "survival_probability")]
    assert len(probabilities) == 9
    assert probabilities[-1] == pytest.approx(0.5)
    steps = [earlier - later for earlier, later in zip(probabilities, probabilities[1:])]
    assert steps == pytest.approx([0.5 / 9] * 8)
    assert probabilities[0] == pytest.approx(1 - 0.5 / 9)


def test_fastresnet_logits_are_the_original_bias_free_linear_scaled_by_one_eighth():
    model = build_model("fastresnet", 7, 3).eval()
    assert model.classifier.bias is None
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        unscaled = model.features(images)
        torch.testing.assert_close(model(images),
                                   LOGIT_SCALE * (unscaled @ model.classifier.weight.T))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_stem_follows_small_input_flag(name):
    with torch.device("meta"):
        small = build_model(name, 10, in_channels=1)
        imagenet = build_model(name, 10, in_channels=1, small_input=False).eval()
        assert imagenet(torch.empty(2, 1, 32, 32)).shape == (2, 10)
    assert _first_conv(small).kernel_size == (3, 3) and _first_conv(small).stride == (1, 1)
    assert isinstance(small.body.maxpool, nn.Identity)
    assert _first_conv(imagenet).kernel_size == (7, 7) and _first_conv(imagenet).stride == (2, 2)
    assert _first_conv(imagenet).in_channels == 1
    assert isinstance(imagenet.body.maxpool, nn.MaxPool2d)


def test_wideresnet_uses_slow_batch_norm_momentum_and_dropout_option():
    model = build_model("wideresnet28-2", 10, dropout=0.3)
    batch_norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    assert {bn.momentum for bn in batch_norms} == {0.001}
    assert {module.p for module in model.modules() if isinstance(module, nn.Dropout)} == {0.3}
    assert {bn.momentum for bn in build_model("wideresnet28-2", 10, bn_momentum=0.1).modules()
            if isinstance(bn, nn.BatchNorm2d)} == {0.1}


def test_unknown_name_error_suggests_closest_and_lists_valid_names():
    with pytest.raises(ValueError) as error:
        build_model("wideresnet28_2", 10)
    message = str(error.value)
    assert "'wideresnet28_2'" in message
    assert "did you mean 'wideresnet28-2'" in message
    assert all(name in message for name in MODEL_NAMES)
    with pytest.raises(ValueError, match="did you mean 'pyramidnet272'"):
        check_model_name("pyramidnet-272")
    check_model_name("smallcnn")


def test_options_are_checked_against_the_chosen_model():
    assert model_options("wideresnet28-10") == ("dropout", "bn_momentum")
    with pytest.raises(TypeError, match="does not take option\\(s\\) depth.*fixed by the name: "
                       "depth, width"):
        build_model("wideresnet28-10", 10, depth=40)
    with pytest.raises(TypeError, match="small_input"):
        build_model("resnet18", 10, smal_input=False)


@pytest.mark.parametrize(
    "name, num_classes, in_channels, options, fragment",
    [
        ("smallcnn", 0, 1, {}, "num_classes must be a positive int"),
        ("smallcnn", 10, 0, {}, "in_channels must be a positive int"),
        ("wideresnet", 10, 3, {"depth": 27}, "6n\\+4"),
        ("pyramidnet", 10, 3, {"depth": 21}, "9n\\+2"),
        ("wideresnet28-2", 10, 3, {"dropout": 1.0}, "dropout must lie in"),
    ],
)
def test_bad_sizes_are_rejected_with_the_expected_form(name, num_classes, in_channels, options,
                                                       fragment):
    with pytest.raises(ValueError, match=fragment):
        build_model(name, num_classes, in_channels, **options)


def test_numpy_integer_sizes_are_accepted():
    model = build_model("smallcnn", np.int64(4), np.int64(1))
    assert model.classifier.out_features == 4
