"""Policies and the pipeline factory: per-image randomness, determinism, shapes, errors."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augssl.augment import (
    AUTOAUGMENT_POLICY_NAMES,
    IDENTITY_ID,
    OP_NAMES,
    POLICY_NAMES,
    AugmentSpec,
    BatchAutoAugment,
    BatchRandAugment,
    BatchTrivialAugment,
    PILAutoAugment,
    PILRandAugment,
    apply_pil_op,
    build_batch_transform,
    build_pil_transform,
    op_id,
    op_spec,
)
from augssl.augment.autoaugment_policies import AUTOAUGMENT_POLICIES

from .test_augment_ops import FILLS, digit_images, fill_pixels, from_pil, smooth_images, to_pil

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ((3, 32), (1, 28))


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_spec(size: int, channels: int, **settings) -> AugmentSpec:
    return AugmentSpec(size, channels, fill=settings.pop("fill", FILLS[channels]), **settings)


@pytest.mark.parametrize("name", AUTOAUGMENT_POLICY_NAMES)
def test_published_policy_tables_are_well_formed(name):
    policy = AUTOAUGMENT_POLICIES[name]
    assert len(policy) == 25
    for sub_policy in policy:
        assert len(sub_policy) == 2
        for op, probability, level in sub_policy:
            assert op in OP_NAMES and 0.0 <= probability <= 1.0 and 0 <= level <= 9
            assert op_spec(op).has_magnitude or level == 0


def test_batched_autoaugment_draws_different_sub_policies_per_image():
    augment = BatchAutoAugment("cifar10")
    plan = augment.plan(4096, seeded(0))
    counts = torch.bincount(plan.sub_policies, minlength=25)
    assert (counts > 0).all(), "every sub-policy is used in a large batch"
    assert counts.min() > 4096 / 25 * 0.7, "sub-policies are drawn uniformly"
    table = AUTOAUGMENT_POLICIES["cifar10"]
    table_ops = torch.tensor([[op_id(step[0]) for step in sub] for sub in table])
    table_probabilities = torch.tensor([[step[1] for step in sub] for sub in table])
    expected_ops = table_ops[plan.sub_policies]
    fired = plan.op_ids != IDENTITY_ID
    assert torch.equal(plan.op_ids[fired], expected_ops[fired])
    expected_rate = table_probabilities[plan.sub_policies].mean().item()
    assert fired.float().mean().item() == pytest.approx(expected_rate, abs=0.02)


def test_batched_autoaugment_applies_each_images_plan_like_pil():
    images = torch.cat([smooth_images(24, 3, 32, 20), digit_images(8, 3, 32)])
    augment = BatchAutoAugment("svhn", fill=FILLS[3])
    plan = augment.plan(len(images), seeded(1))
    batched = augment(images, seeded(1))
    for index, image in enumerate(images):
        pil_image = to_pil(image)
        for step in range(2):
            op, argument = int(plan.op_ids[index, step]), float(plan.arguments[index, step])
            pil_image = apply_pil_op(pil_image, op, argument, FILLS[3])
        assert torch.equal(batched[index], from_pil(pil_image)), (
            f"image {index} differs from its PIL replay"
        )


@pytest.mark.parametrize(
    "transform", [BatchAutoAugment("cifar10"), BatchRandAugment(2, 9), BatchTrivialAugment()]
)
def test_identical_images_in_one_batch_are_augmented_differently(transform):
    batch = smooth_images(1, 3, 32, 21).expand(64, -1, -1, -1).contiguous()
    result = transform(batch, seeded(2))
    distinct = {bytes(image.numpy()) for image in result}
    assert len(distinct) >= 20


def test_randaugment_uses_its_magnitude_on_the_0_to_30_scale():
    plan = BatchRandAugment(num_ops=3, magnitude=15).plan(2048, seeded(3))
    assert plan.op_ids.shape == (2048, 3)
    assert set(plan.op_ids.unique().tolist()) == {
        op_id(name) for name in OP_NAMES if name != "Invert"
    }
    rotations = plan.arguments[plan.op_ids == op_id("Rotate")]
    assert set(rotations.abs().tolist()) == {15.0}
    assert (rotations > 0).any() and (rotations < 0).any()
    assert set(plan.arguments[plan.op_ids == op_id("Posterize")].tolist()) == {6.0}


def test_trivialaugment_draws_one_op_at_a_uniform_level():
    plan = BatchTrivialAugment().plan(4096, seeded(4))
    assert plan.op_ids.shape == (4096, 1)
    shears = plan.arguments[plan.op_ids == op_id("ShearX")].abs()
    levels = torch.round(shears / 0.3 * 30).unique()
    assert len(levels) == 31, "all 31 levels 0..30 occur"


@pytest.mark.parametrize("policy", POLICY_NAMES)
@pytest.mark.parametrize("channels,size", SHAPES)
def test_batch_pipelines_keep_dtype_shape_and_are_deterministic(policy, channels, size):
    spec = make_spec(size, channels)
    transform = build_batch_transform(policy, spec)
    images = smooth_images(16, channels, size, 22)
    first = transform(images, seeded(5))
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert torch.equal(first, transform(images, seeded(5)))
    if policy != "none":
        assert not torch.equal(first, transform(images, seeded(6))), (
            "another seed gives other draws"
        )


@pytest.mark.parametrize("policy", POLICY_NAMES)
@pytest.mark.parametrize("channels,size", SHAPES)
def test_pil_pipelines_keep_mode_and_size_and_are_deterministic(policy, channels, size):
    spec = make_spec(size, channels)
    images = [to_pil(image) for image in smooth_images(8, channels, size, 23)]

    def run(seed: int) -> list[np.ndarray]:
        transform = build_pil_transform(policy, spec, random.Random(seed))
        outputs = [transform(image) for image in images]
        assert all(image.mode == spec.pil_mode and image.size == (size, size) for image in outputs)
        return [np.asarray(image) for image in outputs]

    first = run(7)
    assert all(np.array_equal(a, b) for a, b in zip(first, run(7)))
    if policy != "none":
        assert not all(np.array_equal(a, b) for a, b in zip(first, run(8))), (
            "another seed gives other draws"
        )


def test_pil_autoaugment_varies_between_calls_and_uses_the_global_random_by_default():
    image = to_pil(smooth_images(1, 3, 32, 24)[0])
    augment = PILAutoAugment("cifar10", random.Random(8))
    outputs = {np.asarray(augment(image)).tobytes() for _ in range(60)}
    assert len(outputs) >= 15
    default = PILAutoAugment("imagenet")
    random.seed(9)
    first = [np.asarray(default(image)) for _ in range(10)]
    random.seed(9)
    second = [np.asarray(default(image)) for _ in range(10)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_none_and_degenerate_weak_pipelines_are_identity():
    images = smooth_images(8, 3, 32, 25)
    assert torch.equal(build_batch_transform("none", make_spec(32, 3))(images, seeded(0)), images)
    still = make_spec(32, 3, flip=False, pad=0, cutout_size=0, randaugment_num_ops=0)
    for policy in ("weak", "cutout", "randaugment"):
        assert torch.equal(build_batch_transform(policy, still)(images, seeded(0)), images), policy
        pil = build_pil_transform(policy, still, random.Random(0))
        assert np.array_equal(
            np.asarray(pil(to_pil(images[0]))), images[0].permute(1, 2, 0).numpy()
        )


def test_flip_only_weak_mirrors_about_half_the_images():
    images = smooth_images(64, 3, 32, 26)
    result = build_batch_transform("weak", make_spec(32, 3, pad=0))(images, seeded(10))
    mirrored = (result == images.flip(-1)).flatten(1).all(dim=1)
    unchanged = (result == images).flatten(1).all(dim=1)
    assert bool((mirrored ^ unchanged).all())
    assert 16 <= int(mirrored.sum()) <= 48


@pytest.mark.parametrize("channels", (1, 3))
def test_cutout_pipelines_paint_one_square_of_the_data_sets_mean(channels):
    images = smooth_images(32, channels, 28, 27) // 4 + 160  # values >= 160: fill pixels stand out
    spec = make_spec(28, channels, flip=False, pad=0, cutout_size=10)
    result = build_batch_transform("cutout", spec)(images, seeded(11))
    painted = fill_pixels(result, spec.fill)
    counts = painted.sum(dim=(1, 2))
    assert bool(((counts >= 25) & (counts <= 100)).all()), "a 10x10 square, clipped to at least 5x5"
    kept = ~painted.unsqueeze(1).expand_as(result)
    assert torch.equal(result[kept], images[kept])
    pil = build_pil_transform("cutout", spec, random.Random(0))
    for image in images[:8]:
        painted = fill_pixels(from_pil(pil(to_pil(image))).unsqueeze(0), spec.fill)
        assert 25 <= int(painted.sum()) <= 100


@pytest.mark.parametrize("policy", ("autoaugment", "randaugment", "trivialaugment"))
@pytest.mark.parametrize("channels,size", SHAPES)
def test_strong_policies_fill_with_the_specs_colour(policy, channels, size):
    """Black images, no Cutout: the output depends on the fill only through geometric ops."""
    black = torch.zeros(64, channels, size, size, dtype=torch.uint8)
    specs = [make_spec(size, channels, flip=False, pad=0, cutout_size=0, fill=(value,) * channels)
             for value in (73, 74)]
    batched = [build_batch_transform(policy, spec)(black, seeded(13)) for spec in specs]
    assert not torch.equal(*batched)
    pil = [build_pil_transform(policy, spec, random.Random(14)) for spec in specs]
    outputs = [[np.asarray(transform(to_pil(image))) for image in black[:32]] for transform in pil]
    assert not all(np.array_equal(a, b) for a, b in zip(*outputs))


@pytest.mark.parametrize("channels,size", SHAPES)
def test_randaugment_on_black_images_shows_only_black_and_the_fill(channels, size):
    """One op at magnitude 9 leaves black images black except for geometric ops' fill."""
    black = torch.zeros(64, channels, size, size, dtype=torch.uint8)
    spec = make_spec(size, channels, flip=False, pad=0, cutout_size=0, randaugment_num_ops=1)
    result = build_batch_transform("randaugment", spec)(black, seeded(15))
    filled = fill_pixels(result, spec.fill)
    assert (filled | (result == 0).all(dim=1)).all() and filled.any()
    augment = PILRandAugment(1, 9, random.Random(16), fill=spec.fill)
    outputs = torch.stack([from_pil(augment(to_pil(image))) for image in black])
    filled = fill_pixels(outputs, spec.fill)
    assert (filled | (outputs == 0).all(dim=1)).all() and filled.any()


@pytest.mark.parametrize("size,expected", ((28, 14), (32, 16), (96, 48), (224, 112)))
def test_default_cutout_is_half_the_image_side(size, expected):
    assert make_spec(size, 3).cutout_size == expected
    assert make_spec(size, 3, cutout_size=8).cutout_size == 8, "an explicit size is kept"
    assert make_spec(size, 3, cutout_size=0).cutout_size == 0, "0 still disables Cutout"


def test_the_spec_needs_a_fill_with_one_value_per_channel():
    with pytest.raises(TypeError, match="fill"):
        AugmentSpec(32, 3)
    with pytest.raises(ValueError, match="fill must hold 1 or 3 values"):
        AugmentSpec(32, 3, fill=(1, 2))
    assert AugmentSpec(28, 1, fill=(73,)).fill == (73,)


def test_unknown_names_raise_value_errors_listing_valid_names():
    spec = make_spec(32, 3)
    with pytest.raises(ValueError, match="unknown augmentation policy 'autoaug'.*randaugment"):
        build_batch_transform("autoaug", spec)
    with pytest.raises(ValueError, match="unknown augmentation policy 'strong'.*trivialaugment"):
        build_pil_transform("strong", spec)
    with pytest.raises(ValueError,
                       match="unknown AutoAugment policy 'cifar100'.*cifar10, svhn, imagenet"):
        make_spec(32, 3, autoaugment_policy="cifar100")
    with pytest.raises(ValueError, match="unknown AutoAugment policy 'mnist'"):
        BatchAutoAugment("mnist")


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"channels": 4}, "channels must be 1"),
        ({"randaugment_magnitude": 31}, r"0\.\.30"),
        ({"pad": 32}, "pad must lie in"),
        ({"cutout_size": -2}, r"cutout_size must be >= 0 \(0 disables Cutout\) or -1"),
        ({"fill": (0, 0, 300)}, r"fill values must lie in 0\.\.255"),
    ],
)
def test_invalid_specs_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        AugmentSpec(**{"image_size": 32, "channels": 3, "fill": FILLS[3], **overrides})


def test_pipelines_reject_images_that_do_not_match_the_spec():
    spec = make_spec(32, 3)
    with pytest.raises(ValueError, match=r"expects batches of shape \(B, 3, 32, 32\)"):
        build_batch_transform("weak", spec)(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), None)
    with pytest.raises(ValueError, match="expects RGB images of 32x32 pixels, got L 28x28"):
        build_pil_transform("weak", spec)(Image.new("L", (28, 28)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_give_the_cpu_result():
    images = smooth_images(64, 3, 32, 28)
    transform = build_batch_transform("autoaugment", make_spec(32, 3))
    on_cpu = transform(images, seeded(12))
    on_gpu = transform(images.cuda(), seeded(12))
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu.cpu(), on_cpu)


def test_benchmark_runs_with_tiny_sizes():
    path = ROOT / "bench" / "bench_autoaugment.py"
    spec = importlib.util.spec_from_file_location("bench_autoaugment", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run(num_images=8, batch_size=4, rounds=1)
    for key in ("torchvision_pil_images_per_s", "batched_images_per_s", "augssl_pil_images_per_s"):
        assert result[key] > 0
    assert result["ratio_batched_over_torchvision"] == pytest.approx(
        result["batched_images_per_s"] / result["torchvision_pil_images_per_s"]
    )
