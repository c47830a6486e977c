"""Where a search moved the policy's mass, and what the evaluations' rewards said of each
operation."""

import pytest
import torch

from augssl.search.aws import OPERATION_NAMES, PairPolicy, operation_index, pair_counts
from augssl.search.aws.operation_summary import (
    SEARCH_OPERATIONS,
    operation_rewards,
    operation_usage,
    operations_applied,
)


def _pairs(*names: tuple[str, str]) -> torch.Tensor:
    first = torch.tensor([operation_index(a) for a, _ in names])
    second = torch.tensor([operation_index(b) for _, b in names])
    return pair_counts(first, second)


def test_the_uniform_policy_uses_an_operation_by_its_levels():
    usage = operation_usage(PairPolicy().joint().detach())
    assert list(usage) == list(SEARCH_OPERATIONS)
    assert len(SEARCH_OPERATIONS) == 14 and set(SEARCH_OPERATIONS) == {
        name.split("@")[0] for name in OPERATION_NAMES}
    # an op with 3 levels is 3 of the 36 entries: a pair misses it with (33/36)^2
    assert usage["Rotate"] == pytest.approx(1 - (33 / 36) ** 2)
    assert usage["Invert"] == pytest.approx(1 - (35 / 36) ** 2)


def test_a_policy_on_one_pair_uses_its_two_operations_alone():
    joint = _pairs(("Rotate@3", "Color@9")).double()
    usage = operation_usage(joint / joint.sum())
    assert usage["Rotate"] == pytest.approx(1.0) and usage["Color"] == pytest.approx(1.0)
    assert sum(usage.values()) == pytest.approx(2.0)
    same = _pairs(("Rotate@3", "Rotate@9")).double()
    assert operation_usage(same / same.sum())["Rotate"] == pytest.approx(1.0)  # counted once


def test_the_operations_a_set_of_pairs_applies_are_listed_in_space_order():
    assert operations_applied(_pairs(("Solarize@6", "Color@3"), ("Color@9", "Invert"))) == [
        "Color", "Solarize", "Invert"]


def test_operation_rewards_compare_the_evaluations_with_and_without_an_operation():
    evaluations = [(operations_applied(_pairs(("Solarize@6", "Color@3"))), 0.70),
                   (operations_applied(_pairs(("Solarize@9", "Rotate@3"))), 0.72),
                   (operations_applied(_pairs(("Color@6", "Rotate@6"))), 0.80)]
    rewards = operation_rewards(evaluations)
    assert rewards["Solarize"] == {"with": pytest.approx(0.71), "evaluations_with": 2,
                                   "without": pytest.approx(0.80)}
    assert rewards["Color"]["with"] == pytest.approx(0.75)
    assert rewards["Color"]["without"] == pytest.approx(0.72)
    # an operation no evaluation applied, or that every one applied, has nothing to compare
    assert "Invert" not in rewards
    assert "Rotate" in rewards
    everywhere = operation_rewards([(["Invert", "Color"], 0.7), (["Invert", "Rotate"], 0.8)])
    assert "Invert" not in everywhere
