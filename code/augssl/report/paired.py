"""Differences to a baseline group, paired run by run.

With few labels each seed draws another labelled subset, and the seeds can spread more than the
methods differ; two runs that share the seed share the subset, so the difference between them
shows the method's effect without that spread. A `Pairing` names the baseline group by some of
the group-by values (``policy=none``) and the param that pairs runs (``seed``, or AutoDO's
``run``); each other group is compared with the group that has the baseline's values for those
keys and its own for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from augssl.report.errors import ReportError
from augssl.report.options import format_filter

if TYPE_CHECKING:
    from augssl.report.tables import GroupStats, Report


@dataclass(frozen=True)
class Pairing:
    baseline: Mapping[str, str]  # group-by values naming the baseline group: {"policy": "none"}
    paired_by: str = "seed"  # the param whose equal values pair two runs

    @property
    def label(self) -> str:
        return f"vs {format_filter(self.baseline)}, paired by {self.paired_by}"


def check_pairing(pairing: Pairing, group_by: tuple[str, ...]) -> None:
    """ReportError, saying what to give instead, for a pairing the grouping cannot serve."""
    if not pairing.baseline:
        raise ReportError("a paired comparison needs its baseline: name the baseline group by "
                          "group-by values, e.g. 'policy=none'")
    for key in pairing.baseline:
        if key not in group_by:
            raise ReportError(f"baseline key {key!r} is not a group-by key: the baseline is one "
                              f"of the table's groups, named by some of "
                              f"{', '.join(group_by) or '(no group-by keys)'}")
    if pairing.paired_by in group_by:
        raise ReportError(f"{pairing.paired_by!r} pairs runs, so it cannot also be a group-by "
                          f"key: remove it from the group-by keys or pair by another param")


def _baseline_key(report: Report, key: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(report.pairing.baseline.get(name, value)
                 for name, value in zip(report.group_by, key))


def paired_differences(report: Report, group: GroupStats) -> tuple[float, ...] | None:
    """``group``'s values minus its baseline's, for each pair value both groups hold (in the
    group's order); None for a baseline group itself; () where no run has a partner."""
    baseline_key = _baseline_key(report, group.key)
    if baseline_key == group.key:
        return None
    baseline = next((other for other in report.groups if other.key == baseline_key), None)
    if baseline is None:
        return ()
    partner = dict(zip(baseline.pair_values, baseline.values))
    return tuple(value - partner[pair] for pair, value in zip(group.pair_values, group.values)
                 if pair in partner)


def check_baseline_found(report: Report) -> None:
    """ReportError when no group of ``report`` has the baseline's values."""
    baseline = report.pairing.baseline
    positions = [report.group_by.index(key) for key in baseline]
    wanted = tuple(baseline.values())
    if any(tuple(group.key[i] for i in positions) == wanted for group in report.groups):
        return
    taken = "; ".join(f"{key} takes {', '.join(sorted({g.key[i] for g in report.groups}))}"
                      for key, i in zip(baseline, positions))
    raise ReportError(f"baseline: no group has {format_filter(baseline)}: {taken}. Name the "
                      f"baseline with values of these (clauses separated by ';')")
