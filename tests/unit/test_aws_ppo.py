"""PPO on the pair policy: learning a toy reward, KL early stop, clipping, baseline, state."""

from __future__ import annotations

import pytest
import torch

from augssl.search.aws import (
    NUM_PAIRS,
    EMABaseline,
    PairPolicy,
    PolicyEvaluation,
    PolicyPPO,
    PPOConfig,
    clipped_surrogate,
)

REWARDED = (7, 30)  # TranslateX@6 -> Brightness@3


@pytest.fixture(autouse=True)
def single_thread():
    # Each PPO step is a few dozen ops on 1332 numbers, far below the size where intra-op
    # threads help; on a busy 2-core machine their synchronisation made these tests 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def one_hot_counts(first: int, second: int) -> torch.Tensor:
    counts = torch.zeros(36, 36)
    counts[first, second] = 1
    return counts


def toy_evaluations(
    policy: PairPolicy, generator: torch.Generator, evaluations: int = 4, samples: int = 256
):
    """Each evaluation 'fine-tunes' on `samples` pairs from the policy; its reward is the share
    of those that were the rewarded pair."""
    results = []
    for _ in range(evaluations):
        first, second = policy.sample(samples, generator)
        reward = ((first == REWARDED[0]) & (second == REWARDED[1])).float().mean().item()
        results.append(PolicyEvaluation.from_pairs(first, second, reward))
    return results


def rank_of(policy: PairPolicy, pair: tuple[int, int]) -> int:
    joint = policy.joint().detach()
    return int((joint > joint[pair]).sum()) + 1


def test_repeated_updates_concentrate_the_policy_on_the_rewarded_pair():
    policy = PairPolicy()
    ppo = PolicyPPO(policy)
    generator = torch.Generator().manual_seed(0)
    before = float(policy.joint().detach()[REWARDED])
    for _ in range(40):
        stats = ppo.update(toy_evaluations(policy, generator))
    after = float(policy.joint().detach()[REWARDED])
    assert before == pytest.approx(1 / NUM_PAIRS)
    assert after > 0.5, f"P(rewarded pair) went from {before:.5f} to only {after:.5f} in 40 updates"
    assert rank_of(policy, REWARDED) == 1
    assert stats["entropy"] < 2.0 and stats["steps"] >= 1


def test_kl_limit_stops_the_update_early():
    evaluations = [
        PolicyEvaluation(one_hot_counts(*REWARDED), 1.0),
        PolicyEvaluation(one_hot_counts(3, 4), 0.0),
    ]
    strict = PolicyPPO(PairPolicy(), PPOConfig(inner_steps=8, max_kl=1e-9)).update(evaluations)
    assert strict["steps"] == 1 and strict["early_stopped"] == 1.0
    loose = PolicyPPO(PairPolicy(), PPOConfig(inner_steps=8, max_kl=10.0)).update(evaluations)
    assert loose["steps"] == 8 and loose["early_stopped"] == 0.0
    assert 0 < strict["kl"] < loose["kl"]


def test_baseline_is_an_exact_moving_average_of_mean_rewards():
    baseline = EMABaseline(decay=0.9)
    assert baseline.advantages([0.5]) == [0.0], (
        "before any update the baseline is the rewards' mean"
    )
    assert baseline.update([0.5]) == 0.5
    assert baseline.advantages([0.7]) == pytest.approx([0.2], abs=1e-15)
    assert baseline.update([0.7]) == pytest.approx(0.9 * 0.5 + 0.1 * 0.7, abs=1e-15)
    assert baseline.advantages([0.6, 0.8]) == pytest.approx([0.6 - 0.52, 0.8 - 0.52], abs=1e-15)
    assert baseline.update([0.6, 0.8]) == pytest.approx(0.9 * 0.52 + 0.1 * 0.7, abs=1e-15)
    restored = EMABaseline(decay=0.5)
    restored.load_state_dict(baseline.state_dict())
    assert restored.decay == 0.9 and restored.value == baseline.value
    with pytest.raises(ValueError, match="decay must lie in"):
        EMABaseline(1.0)


def test_ppo_update_uses_the_baseline_before_folding_in_the_new_rewards():
    ppo = PolicyPPO(PairPolicy())
    ppo.baseline.load_state_dict({"decay": 0.9, "value": 0.4})
    stats = ppo.update([PolicyEvaluation(one_hot_counts(1, 2), 0.6)])
    assert stats["mean_advantage"] == pytest.approx(0.2)
    assert stats["baseline"] == pytest.approx(0.9 * 0.4 + 0.1 * 0.6)


def test_advantage_is_spread_over_pairs_by_sampling_share():
    counts = torch.zeros(36, 36)
    counts[1, 2], counts[3, 4] = 3, 1
    evaluation = PolicyEvaluation(counts, 0.0)
    log_ratio = torch.zeros(36, 36, requires_grad=True)
    advantages = torch.tensor([2.0])
    weights = evaluation.pair_weights.float().unsqueeze(0)
    clipped_surrogate(log_ratio, advantages, weights, 0.2).backward()
    # At ratio 1 the gradient of each pair's term is its share times the advantage.
    assert log_ratio.grad[1, 2] == pytest.approx(2.0 * 0.75)
    assert log_ratio.grad[3, 4] == pytest.approx(2.0 * 0.25)
    assert log_ratio.grad.abs().sum() == pytest.approx(2.0)


def test_clipping_removes_the_gradient_beyond_the_trust_region():
    weights = torch.ones(1, 36, 36) / NUM_PAIRS
    for advantage, log_ratio_value, zero_gradient in (
        (1.0, 0.5, True),  # ratio 1.65 > 1.2 already favoured: no further push
        (1.0, 0.1, False),  # ratio 1.11 inside the region
        (-1.0, -0.5, True),  # ratio 0.61 < 0.8 already disfavoured
        (-1.0, 0.5, False),  # the pessimistic bound keeps pulling a bad pair back down
    ):
        log_ratio = torch.full((36, 36), log_ratio_value, requires_grad=True)
        clipped_surrogate(log_ratio, torch.tensor([advantage]), weights, 0.2).backward()
        assert (log_ratio.grad.abs().sum() == 0) == zero_gradient, (advantage, log_ratio_value)


def test_clipping_bounds_how_far_one_update_moves_the_policy():
    def ratio_after(clip: float, steps: int, advantage: float) -> float:
        policy = PairPolicy()
        ppo = PolicyPPO(policy, PPOConfig(clip=clip, inner_steps=steps, max_kl=1e9,
                                          entropy_coefficient=0.0))
        ppo.baseline.load_state_dict({"decay": 0.9, "value": 0.0})
        ppo.update([PolicyEvaluation(one_hot_counts(*REWARDED), advantage)])
        return float(policy.joint().detach()[REWARDED]) * NUM_PAIRS

    huge = 1e6
    clipped_20, clipped_50 = ratio_after(0.2, 20, huge), ratio_after(0.2, 50, huge)
    unclipped_50 = ratio_after(1e9, 50, huge)
    # Once the pair's ratio passes 1 + eps its gradient vanishes; the policy stops where the
    # last steps' momentum left it, however many more steps and however large the advantage.
    assert clipped_20 == pytest.approx(clipped_50, rel=1e-4)
    assert clipped_50 < 3.0
    assert unclipped_50 > 100 * clipped_50
    assert ratio_after(0.2, 20, 1.0) == pytest.approx(clipped_20, rel=1e-4)


def test_state_dict_round_trip_continues_identically():
    generator = torch.Generator().manual_seed(1)
    original = PolicyPPO(PairPolicy(), PPOConfig(entropy_coefficient=1e-3))
    for _ in range(3):
        original.update(toy_evaluations(original.policy, generator, evaluations=2, samples=128))
    restored = PolicyPPO(PairPolicy(), PPOConfig(entropy_coefficient=1e-3))
    restored.load_state_dict(original.state_dict())
    assert restored.baseline.value == original.baseline.value
    next_evaluations = toy_evaluations(original.policy, generator, evaluations=2, samples=128)
    original_stats = original.update(next_evaluations)
    restored_stats = restored.update(next_evaluations)
    assert torch.equal(original.policy.joint(), restored.policy.joint()), (
        "Adam state must be restored too"
    )
    assert original_stats == restored_stats


def test_evaluations_and_configs_are_validated():
    with pytest.raises(ValueError, match=r"\(36, 36\) histogram"):
        PolicyEvaluation(torch.ones(10), 0.5)
    with pytest.raises(ValueError, match="not all zero"):
        PolicyEvaluation(torch.zeros(36, 36), 0.5)
    with pytest.raises(ValueError, match="at least one PolicyEvaluation"):
        PolicyPPO(PairPolicy()).update([])
    with pytest.raises(ValueError, match="max_kl must be positive"):
        PPOConfig(max_kl=0.0)
    flat = PolicyEvaluation(torch.arange(NUM_PAIRS), 1.0)
    assert flat.pair_counts[0, 5] == 5 and float(flat.pair_weights.sum()) == pytest.approx(1.0)
