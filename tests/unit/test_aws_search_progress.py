"""The search's progress: each loop's reward standard error, kept across a resume."""

import math

import pytest

import aws_search
from augssl.search.aws import PairPolicy, PolicyPPO, PPOConfig


def _progress() -> aws_search.SearchProgress:
    return aws_search.SearchProgress(PolicyPPO(PairPolicy(), PPOConfig()))


def test_the_reward_standard_error_is_the_spread_of_a_loops_rewards_over_root_n():
    assert aws_search.reward_std_error([0.80, 0.82, 0.84, 0.86]) == pytest.approx(
        0.025819889 / math.sqrt(4))
    assert aws_search.reward_std_error([0.8]) is None  # one evaluation has no spread


def test_progress_keeps_the_standard_errors_through_a_checkpoint():
    progress = _progress()
    progress.record({"entropy": 7.0}, 0.01, [])
    progress.record({"entropy": 6.9}, None, [])
    progress.record({"entropy": 6.8}, 0.02, [])
    restored = _progress()
    restored.load_state_dict(progress.state_dict())
    assert restored.reward_std_errors == [0.01, 0.02] and restored.finished_loops == 3


def test_a_checkpoint_from_before_the_standard_errors_resumes_without_them():
    state = _progress().state_dict()
    del state["reward_std_errors"]
    restored = _progress()
    restored.load_state_dict(state)
    assert restored.reward_std_errors == []


def test_progress_keeps_each_evaluations_operations_and_reward_through_a_checkpoint():
    progress = _progress()
    progress.record({"entropy": 7.0}, 0.01, [(["Color", "Rotate"], 0.7), (["Invert"], 0.8)])
    progress.record({"entropy": 6.9}, 0.01, [(["Solarize"], 0.75)])
    restored = _progress()
    restored.load_state_dict(progress.state_dict())
    assert restored.evaluations == [(["Color", "Rotate"], 0.7), (["Invert"], 0.8),
                                    (["Solarize"], 0.75)]


def test_a_checkpoint_from_before_the_evaluations_were_kept_resumes_without_them():
    state = _progress().state_dict()
    del state["evaluations"]
    restored = _progress()
    restored.load_state_dict(state)
    assert restored.evaluations == []
