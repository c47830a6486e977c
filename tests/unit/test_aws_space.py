"""The 36-operation AWS search space: identity of the entries, PIL agreement, magnitudes, pairs."""

from __future__ import annotations

import random

import pytest
import torch

from augssl.augment import OpKind, apply_ops, op_spec
from augssl.search.aws import (
    NUM_OPERATIONS,
    OPERATION_NAMES,
    SEARCH_SPACE,
    apply_pair_pil,
    apply_pairs,
    operation_arguments,
    operation_index,
    plan_pairs,
)
from augssl.search.aws.space import MAGNITUDE_OPS, PARAMETER_FREE_OPS

from .test_augment_ops import (
    BLEND_OPS,
    FILLS,
    IMAGE_SETS,
    assert_matches_pil,
    digit_images,
    from_pil,
    gradient_images,
    pil_reference,
    smooth_images,
    to_pil,
)

ALL = torch.arange(NUM_OPERATIONS)


def rgb_images() -> torch.Tensor:
    return torch.cat([smooth_images(4, 3, 32, 20), digit_images(3, 3, 32), gradient_images(3, 32)])


def each_operation(images: torch.Tensor, index: int, negate: bool) -> torch.Tensor:
    indices = torch.full((len(images),), index)
    op_ids, arguments = operation_arguments(indices, torch.full((len(images),), negate))
    return apply_ops(images, op_ids, arguments)


def test_space_is_36_named_operations_keyed_by_op_and_level():
    assert NUM_OPERATIONS == len(SEARCH_SPACE) == 36
    assert len(set(OPERATION_NAMES)) == 36
    assert len({(entry.op, entry.level) for entry in SEARCH_SPACE}) == 36
    for op in MAGNITUDE_OPS:
        entries = [entry for entry in SEARCH_SPACE if entry.op == op]
        assert [entry.name for entry in entries] == [f"{op}@3", f"{op}@6", f"{op}@9"]
        assert len({entry.argument() for entry in entries}) == 3, f"{op}: three distinct magnitudes"
    assert [entry.name for entry in SEARCH_SPACE[-3:]] == list(PARAMETER_FREE_OPS)
    assert OPERATION_NAMES[operation_index("Rotate@6")] == "Rotate@6"
    assert SEARCH_SPACE[operation_index("Rotate@9")].argument() == pytest.approx(27.0)
    assert SEARCH_SPACE[operation_index("Posterize@9")].argument() == 4.0
    with pytest.raises(ValueError, match="unknown search operation 'Rotate@5'.*Rotate@6"):
        operation_index("Rotate@5")
    with pytest.raises(ValueError, match="out of range"):
        operation_index(36)


@pytest.mark.parametrize("negate", (False, True))
def test_no_two_operations_give_the_same_images(negate):
    images = rgb_images()
    outputs = torch.stack(
        [each_operation(images, index, negate) for index in range(NUM_OPERATIONS)]
    )
    for i in range(NUM_OPERATIONS):
        assert not torch.equal(outputs[i], images), (
            f"{OPERATION_NAMES[i]} leaves the images unchanged"
        )
        for j in range(i + 1, NUM_OPERATIONS):
            assert not torch.equal(outputs[i], outputs[j]), (
                f"{OPERATION_NAMES[i]} == {OPERATION_NAMES[j]}"
            )


@pytest.mark.parametrize("image_set", ("rgb32", "grey28"))
def test_each_operation_matches_the_pil_reference(image_set):
    images = IMAGE_SETS[image_set]()
    for index, entry in enumerate(SEARCH_SPACE):
        for negate in (False, True) if op_spec(entry.op).signed else (False,):
            reference = pil_reference(images, entry.op, [entry.argument(negate)] * len(images))
            assert_matches_pil(entry.op, each_operation(images, index, negate), reference)


def test_pairs_apply_both_operations_in_order_like_the_pil_reference():
    images = torch.cat([smooth_images(30, 3, 32, 21), digit_images(18, 3, 32)])
    generator = torch.Generator().manual_seed(22)
    first = torch.randint(0, NUM_OPERATIONS, (len(images),), generator=generator)
    second = torch.randint(0, NUM_OPERATIONS, (len(images),), generator=generator)
    negate = torch.rand(len(images), 2, generator=generator) < 0.5
    batched = apply_pairs(images, first, second, negate=negate, fill=FILLS[3])
    for i, image in enumerate(images):
        pair = (int(first[i]), int(second[i]))
        signs = (bool(negate[i, 0]), bool(negate[i, 1]))
        reference = from_pil(
            apply_pair_pil(to_pil(image), *pair, negate=signs, fill=FILLS[3])
        ).unsqueeze(0)
        blend = any(SEARCH_SPACE[op].op in BLEND_OPS for op in pair)
        label = f"{OPERATION_NAMES[pair[0]]}->{OPERATION_NAMES[pair[1]]}"
        assert_matches_pil(BLEND_OPS[0] if blend else label, batched[i : i + 1], reference)


def test_pair_order_matters_and_names_work_in_pil():
    images = smooth_images(2, 3, 32, 23)
    invert, solarize = operation_index("Invert"), operation_index("Solarize@3")
    forward = apply_pairs(images, torch.tensor([invert] * 2), torch.tensor([solarize] * 2))
    backward = apply_pairs(images, torch.tensor([solarize] * 2), torch.tensor([invert] * 2))
    assert not torch.equal(forward, backward)
    assert torch.equal(
        forward, each_operation(each_operation(images, invert, False), solarize, False)
    )
    by_name = apply_pair_pil(to_pil(images[0]), "Invert", "Solarize@3", rng=random.Random(0))
    assert torch.equal(from_pil(by_name), forward[0])


def magnitude_of_change(images: torch.Tensor, op: str, level: int, negate: bool) -> float:
    """Geometric ops: share of a black image filled with grey (how far content moved); other
    ops: mean absolute pixel change of `images`.  (The mean change is no measure for a large
    shift, where grey fill can be closer to the image than shifted content.)"""
    index = operation_index(f"{op}@{level}")
    if op_spec(op).kind is OpKind.GEOMETRIC:
        black = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
        return (each_operation(black, index, negate) == 128).float().mean().item()
    return (each_operation(images, index, negate).float() - images.float()).abs().mean().item()


@pytest.mark.parametrize("negate", (False, True))
def test_magnitude_grows_with_level(negate):
    images = torch.cat([smooth_images(6, 3, 32, 24), digit_images(4, 3, 32)])
    for op in MAGNITUDE_OPS:
        changes = [magnitude_of_change(images, op, level, negate) for level in (3, 6, 9)]
        assert 0 < changes[0] < changes[1] < changes[2], f"{op} (negate={negate}): {changes}"


def test_signs_are_drawn_per_image_and_reproducible():
    count = 256
    rotate = torch.full((count,), operation_index("Rotate@9"))
    plan = plan_pairs(rotate, rotate, torch.Generator().manual_seed(25))
    assert set(plan.arguments.flatten().tolist()) == {27.0, -27.0}
    assert 0.35 < (plan.arguments[:, 0] > 0).float().mean() < 0.65
    assert not torch.equal(plan.arguments[:, 0], plan.arguments[:, 1]), (
        "each step draws its own sign"
    )
    assert torch.equal(plan.sub_policies, rotate * NUM_OPERATIONS + rotate)
    images = smooth_images(8, 3, 16, 26)
    pairs = (torch.arange(8), torch.arange(8) + 10)
    first_run = apply_pairs(images, *pairs, torch.Generator().manual_seed(27))
    assert torch.equal(first_run, apply_pairs(images, *pairs, torch.Generator().manual_seed(27)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pairs_on_cuda_match_cpu():
    images = torch.cat([smooth_images(40, 3, 32, 28), digit_images(24, 3, 32)])
    generator = torch.Generator().manual_seed(29)
    first = torch.randint(0, NUM_OPERATIONS, (len(images),), generator=generator)
    second = torch.randint(0, NUM_OPERATIONS, (len(images),), generator=generator)
    cpu = apply_pairs(images, first, second, torch.Generator().manual_seed(30))
    cuda = apply_pairs(
        images.cuda(), first.cuda(), second.cuda(), torch.Generator().manual_seed(30)
    )
    assert cuda.device.type == "cuda"
    assert_matches_pil(BLEND_OPS[0], cuda.cpu(), cpu)


def test_bad_pair_indices_raise_clear_errors():
    images = smooth_images(3, 3, 16, 31)
    with pytest.raises(ValueError, match="outside 0..35"):
        apply_pairs(images, torch.tensor([0, 1, 36]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="first must hold 3 operation indices"):
        apply_pairs(images, torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="second must hold 3"):
        apply_pairs(images, torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer tensor"):
        apply_pairs(images, torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"negate must have shape \(3, 2\)"):
        apply_pairs(images, ALL[:3], ALL[:3], negate=torch.zeros(3, dtype=torch.bool))
