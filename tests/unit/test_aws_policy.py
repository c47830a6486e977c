"""The AWS pair policy: distribution, sampling, serialisation, batch transform, Enlarge Batch."""

from __future__ import annotations

import json
import math

import pytest
import torch

from augssl.search.aws import (
    NUM_OPERATIONS,
    NUM_PAIRS,
    OPERATION_NAMES,
    PairPolicy,
    PairPolicyTransform,
    apply_pairs,
    draw_sub_policies,
    enlarge_batch,
    load_policy,
    load_policy_transform,
    operation_index,
    pair_counts,
    save_policy,
)

from .test_augment_ops import smooth_images

# Operations without a sign or other randomness: their output depends only on the pair drawn.
UNSIGNED = [
    operation_index(name)
    for name in ("Solarize@3", "Posterize@9", "AutoContrast", "Equalize", "Invert")
]


def skewed_policy(seed: int = 0) -> PairPolicy:
    policy = PairPolicy()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        policy.first_logits.copy_(torch.randn(NUM_OPERATIONS, generator=generator) * 2)
        policy.second_logits.copy_(
            torch.randn(NUM_OPERATIONS, NUM_OPERATIONS, generator=generator) * 2
        )
    return policy


def concentrated_policy(allowed: list[int]) -> PairPolicy:
    """All mass on pairs of `allowed` operations (uniform among them)."""
    policy = PairPolicy()
    outside = torch.full((NUM_OPERATIONS,), -1e4)
    outside[allowed] = 0.0
    with torch.no_grad():
        policy.first_logits.copy_(outside)
        policy.second_logits.copy_(outside.expand(NUM_OPERATIONS, NUM_OPERATIONS))
    return policy


def test_new_policy_is_uniform_and_normalised():
    policy = PairPolicy()
    assert sum(parameter.numel() for parameter in policy.parameters()) == 36 + 36 * 36
    joint = policy.joint()
    assert joint.shape == (36, 36)
    assert torch.allclose(joint, torch.full((36, 36), 1 / NUM_PAIRS))
    assert float(policy.entropy().detach()) == pytest.approx(math.log(NUM_PAIRS), rel=1e-6)
    skewed = skewed_policy()
    assert float(skewed.first_probabilities().detach().sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(skewed.second_probabilities().sum(dim=1), torch.ones(36))
    assert float(skewed.joint().detach().sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(skewed.entropy().detach()) < math.log(NUM_PAIRS) - 1


def test_joint_log_prob_and_entropy_follow_the_factorisation():
    policy = skewed_policy(1)
    first, second = torch.tensor([0, 5, 35]), torch.tensor([7, 5, 0])
    expected = policy.first_probabilities()[first] * policy.second_probabilities()[first, second]
    assert torch.allclose(policy.log_prob(first, second).exp(), expected, rtol=1e-5)
    assert torch.allclose(policy.joint()[first, second], expected, rtol=1e-5)
    p1, p2 = policy.first_probabilities(), policy.second_probabilities()
    factored = -(p1 * p1.log()).sum() - (p1 * (p2 * p2.log()).sum(dim=1)).sum()
    assert float(policy.entropy().detach()) == pytest.approx(float(factored.detach()), rel=1e-4)
    policy.log_prob(first, second).sum().backward()
    assert policy.first_logits.grad.abs().sum() > 0 and policy.second_logits.grad.abs().sum() > 0


def test_sampling_follows_the_joint_and_is_seeded():
    policy = skewed_policy(2)
    first, second = policy.sample(200_000, torch.Generator().manual_seed(3))
    assert first.shape == second.shape == (200_000,) and first.dtype == torch.int64
    frequencies = pair_counts(first, second).double() / 200_000
    joint = policy.joint().detach().double()
    likely = joint > 0.005
    assert likely.sum() >= 10
    assert torch.allclose(frequencies[likely], joint[likely], rtol=0.1)
    assert (frequencies[joint < 1e-7] == 0).all()
    again = policy.sample(1000, torch.Generator().manual_seed(4))
    repeated = policy.sample(1000, torch.Generator().manual_seed(4))
    assert torch.equal(again[0], repeated[0]) and torch.equal(again[1], repeated[1])


def test_sub_policies_are_drawn_from_the_joint_and_seeded():
    policy = skewed_policy(2)
    joint = policy.joint().detach()
    drawn = draw_sub_policies(joint, 5, torch.Generator().manual_seed(1))
    assert drawn.shape == (36, 36) and drawn.dtype == torch.int64 and int(drawn.sum()) == 5
    assert torch.equal(drawn, draw_sub_policies(joint, 5, torch.Generator().manual_seed(1)))
    many = draw_sub_policies(joint, 100_000, torch.Generator().manual_seed(2)).double() / 100_000
    likely = joint > 0.005
    assert torch.allclose(many[likely], joint[likely].double(), rtol=0.1)
    with pytest.raises(ValueError, match="at least one sub-policy"):
        draw_sub_policies(joint, 0)


def test_pair_counts_is_a_histogram_indexed_by_first_then_second():
    counts = pair_counts(torch.tensor([1, 1, 2, 35]), torch.tensor([2, 2, 1, 0]))
    assert counts.shape == (36, 36) and counts.sum() == 4
    assert counts[1, 2] == 2 and counts[2, 1] == 1 and counts[35, 0] == 1


def test_top_k_lists_the_most_probable_pairs_by_name():
    policy = skewed_policy(5)
    top = policy.top_k(5)
    joint = policy.joint().detach()
    probabilities = [sub.probability for sub in top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert top[0].probability == pytest.approx(float(joint.max()))
    for sub in top:
        pair = (operation_index(sub.first), operation_index(sub.second))
        assert sub.probability == pytest.approx(float(joint[pair]))
    with pytest.raises(ValueError, match="top_k must lie in 1..1296"):
        policy.top_k(0)


def test_json_round_trip_is_readable_and_gives_a_working_transform(tmp_path):
    policy = skewed_policy(6)
    path = save_policy(policy, tmp_path / "policy.json", top_k=10)
    stored = json.loads(path.read_text())
    assert stored["operations"] == list(OPERATION_NAMES)
    assert stored["magnitudes"][operation_index("Rotate@6")] == pytest.approx(18.0)
    assert len(stored["first"]) == 36 and len(stored["second_given_first"]) == 36
    assert all(len(row) == 36 for row in stored["second_given_first"])
    assert len(stored["top"]) == 10 and set(stored["top"][0]) == {"first", "second", "probability"}
    assert stored["top"][0]["first"] in OPERATION_NAMES
    loaded = load_policy(path)
    assert torch.allclose(loaded.joint(), policy.joint(), rtol=1e-5, atol=1e-9)
    assert [sub[:2] for sub in loaded.top_k(10)] == [sub[:2] for sub in policy.top_k(10)]
    expected_top = [sub.probability for sub in policy.top_k(10)]
    assert [sub["probability"] for sub in stored["top"]] == pytest.approx(expected_top)
    transform = load_policy_transform(path)
    images = smooth_images(16, 3, 16, 7)
    augmented = transform(images, torch.Generator().manual_seed(8))
    assert augmented.shape == images.shape and augmented.dtype == torch.uint8
    assert not torch.equal(augmented, images)


def test_transform_applies_the_pairs_it_draws():
    transform = concentrated_policy(UNSIGNED).transform()
    images = smooth_images(32, 3, 16, 9)
    result = transform.augment(images, torch.Generator().manual_seed(10))
    assert set(result.first.tolist()) <= set(UNSIGNED)
    assert set(result.second.tolist()) <= set(UNSIGNED)
    assert len(set(zip(result.first.tolist(), result.second.tolist()))) > 5, (
        "pairs are drawn per image"
    )
    assert torch.equal(result.images, apply_pairs(images, result.first, result.second))
    single = concentrated_policy([operation_index("Invert")]).transform()
    assert torch.equal(single(images, torch.Generator().manual_seed(11)), images), "Invert twice"


def test_enlarge_batch_repeats_each_image_with_independent_pairs():
    transform = concentrated_policy(UNSIGNED).transform()
    images, targets = smooth_images(4, 3, 16, 12), torch.tensor([3, 1, 4, 1])
    generator = torch.Generator().manual_seed(13)
    enlarged = enlarge_batch(images, targets, transform, multiplicity=8, generator=generator)
    assert enlarged.images.shape == (32, 3, 16, 16)
    assert enlarged.targets.tolist() == [3] * 8 + [1] * 8 + [4] * 8 + [1] * 8
    originals = images.repeat_interleave(8, dim=0)
    assert torch.equal(enlarged.images, apply_pairs(originals, enlarged.first, enlarged.second))
    for image in range(4):
        copies = slice(8 * image, 8 * image + 8)
        pairs = set(zip(enlarged.first[copies].tolist(), enlarged.second[copies].tolist()))
        assert len(pairs) > 1, "the copies of one image get different pairs"
    with pytest.raises(ValueError, match="multiplicity must be a positive"):
        enlarge_batch(images, targets, transform, 0)
    with pytest.raises(ValueError, match="4 images but 3 targets"):
        enlarge_batch(images, targets[:3], transform, 2)


def test_loading_rejects_foreign_or_broken_files(tmp_path):
    description = PairPolicy().to_dict()
    other_space = dict(description, operations=list(reversed(OPERATION_NAMES)))
    with pytest.raises(ValueError, match="different list of operations"):
        PairPolicy.from_dict(other_space)
    other_magnitudes = dict(description,
                            magnitudes=[value * 1.1 for value in description["magnitudes"]])
    with pytest.raises(ValueError, match="magnitudes differ"):
        PairPolicy.from_dict(other_magnitudes)
    unnormalised = dict(description, first=[1.0] * 36)
    with pytest.raises(ValueError, match="sum to 1"):
        PairPolicy.from_dict(unnormalised)
    with pytest.raises(ValueError, match="not an AWS policy"):
        PairPolicy.from_dict({"format": "something-else"})
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        load_policy(broken)
    with pytest.raises(FileNotFoundError, match="missing.json does not exist"):
        load_policy(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="non-negative"):
        PairPolicyTransform(torch.ones(36, 36))
