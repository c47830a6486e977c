"""What a search says of each operation of its space, whatever its level: how much of the
learned policy's mass applies it (`operation_usage`), and how the evaluations whose sub-policies
applied it scored against those whose sub-policies did not (`operation_rewards`)."""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable

import torch

from augssl.search.aws.space import MAGNITUDE_OPS, PARAMETER_FREE_OPS, SEARCH_SPACE

SEARCH_OPERATIONS: tuple[str, ...] = MAGNITUDE_OPS + PARAMETER_FREE_OPS


def _pairs_applying(op: str) -> torch.Tensor:
    """(36, 36) bool: the pairs whose first or second operation is ``op`` at any level."""
    entries = torch.tensor([operation.op == op for operation in SEARCH_SPACE])
    return entries.unsqueeze(1) | entries.unsqueeze(0)


def operation_usage(joint: torch.Tensor) -> dict[str, float]:
    """P(a pair drawn from ``joint`` applies the operation), per operation."""
    joint = joint.detach().to(device="cpu", dtype=torch.float64)
    return {op: float(joint[_pairs_applying(op)].sum()) for op in SEARCH_OPERATIONS}


def operations_applied(counts: torch.Tensor) -> list[str]:
    """The operations that the pairs counted in ``counts`` (36, 36) apply, in space order."""
    used = counts.detach().cpu() > 0
    return [op for op in SEARCH_OPERATIONS if bool((used & _pairs_applying(op)).any())]


def operation_rewards(evaluations: Iterable[tuple[Collection[str], float]]) -> dict[str, dict]:
    """For each operation that some evaluations applied and others did not: the mean reward of
    both groups and how many evaluations applied it. ``evaluations`` holds each evaluation's
    operations (`operations_applied` of the pairs it was credited for) with its reward."""
    evaluations = [(set(applied), float(reward)) for applied, reward in evaluations]
    summary = {}
    for op in SEARCH_OPERATIONS:
        with_op = [reward for applied, reward in evaluations if op in applied]
        without = [reward for applied, reward in evaluations if op not in applied]
        if with_op and without:
            summary[op] = {"with": statistics.fmean(with_op), "evaluations_with": len(with_op),
                           "without": statistics.fmean(without)}
    return summary
