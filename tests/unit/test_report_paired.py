"""Differences to a baseline group, paired run by run on a param such as the seed."""

from __future__ import annotations

import csv
import math

import pytest

from augssl import report as rp

# seed -> accuracy; the seeds draw different labelled subsets, so they spread more than the
# policies differ, while each policy beats the baseline on every seed.
NONE = {"0": 0.70, "1": 0.62, "2": 0.66}
STRONG = {"0": 0.73, "1": 0.66, "2": 0.68}
SEEDLESS_GROUP = {"0": 0.50}


def _values(policy: str, by_seed: dict[str, float], labels: str = "100") -> list[rp.RunValue]:
    return [rp.RunValue(f"{policy}-{labels}-{seed}",
                        {"policy": policy, "seed": seed, "num_labelled_samples": labels}, value)
            for seed, value in by_seed.items()]


def _report(values, group_by=("policy",), pairing=None) -> rp.Report:
    paired_by = pairing.paired_by if pairing else None
    return rp.Report(experiment_name="e", experiment_id="1", metric="test/accuracy",
                     summary="final", k=5, group_by=group_by, filters={},
                     groups=rp.group_runs(values, group_by, paired_by=paired_by),
                     pairing=pairing)


PAIRING = rp.Pairing(baseline={"policy": "none"}, paired_by="seed")


def test_differences_are_taken_seed_by_seed_against_the_baseline_group():
    report = _report(_values("none", NONE) + _values("strong", STRONG), pairing=PAIRING)
    none, strong = report.groups
    assert rp.paired_differences(report, none) is None  # the baseline itself
    assert rp.paired_differences(report, strong) == pytest.approx((0.03, 0.04, 0.02))


def test_unmatched_runs_are_left_out_of_the_pairs():
    report = _report(_values("none", {"0": 0.70, "1": 0.62}) + _values("strong", STRONG),
                     pairing=PAIRING)
    assert rp.paired_differences(report, report.groups[1]) == pytest.approx((0.03, 0.04))


def test_the_baseline_is_found_within_each_value_of_the_other_group_keys():
    values = (_values("none", NONE) + _values("strong", STRONG)
              + _values("none", {"0": 0.80, "1": 0.90, "2": 0.85}, labels="-1")
              + _values("strong", {"0": 0.70, "1": 0.80, "2": 0.75}, labels="-1"))
    report = _report(values, group_by=("num_labelled_samples", "policy"), pairing=PAIRING)
    by_key = {group.key: group for group in report.groups}
    assert rp.paired_differences(report, by_key[("100", "strong")]) == pytest.approx(
        (0.03, 0.04, 0.02))
    assert rp.paired_differences(report, by_key[("-1", "strong")]) == pytest.approx(
        (-0.10, -0.10, -0.10))


def test_the_table_shows_mean_and_std_of_the_paired_differences_in_points():
    report = _report(_values("none", NONE) + _values("strong", STRONG), pairing=PAIRING)
    table = rp.format_markdown_table(report, wall_time=False)
    header, _, baseline_row, strong_row = table.splitlines()
    assert header.endswith("| vs policy=none, paired by seed (points) |")
    assert baseline_row.endswith("| baseline |")
    assert strong_row.endswith("| +3.00 ± 1.00 (3 pairs) |")


def test_a_group_without_its_baseline_shows_no_difference():
    values = _values("strong", STRONG) + _values("weak", SEEDLESS_GROUP)
    report = _report(values, pairing=PAIRING)
    assert all(rp.paired_differences(report, group) == () for group in report.groups)
    assert rp.format_markdown_table(report, wall_time=False).splitlines()[2].endswith("|  |")


def test_csv_holds_the_paired_differences(tmp_path):
    report = _report(_values("none", NONE) + _values("strong", STRONG), pairing=PAIRING)
    with rp.write_csv(report, tmp_path / "r.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["paired_differences"] == ""
    assert [float(v) for v in rows[1]["paired_differences"].split(";")] == pytest.approx(
        [0.03, 0.04, 0.02])
    assert math.isclose(float(rows[1]["paired_mean_difference"]), 0.03)


@pytest.mark.parametrize("baseline, paired_by, message", [
    ({"polcy": "none"}, "seed", "baseline key 'polcy' is not a group-by key"),
    ({}, "seed", "name the baseline group"),
    ({"policy": "none"}, "policy", "'policy' pairs runs, so it cannot also be a group-by key"),
])
def test_pairings_that_cannot_work_are_refused_with_what_to_give(baseline, paired_by, message):
    with pytest.raises(rp.ReportError, match=message):
        rp.check_pairing(rp.Pairing(baseline=baseline, paired_by=paired_by), ("policy",))


def test_a_baseline_that_names_no_group_is_refused_with_the_values_there_are():
    report = _report(_values("none", NONE) + _values("strong", STRONG),
                     pairing=rp.Pairing(baseline={"policy": "none,seed=0"}, paired_by="seed"))
    with pytest.raises(rp.ReportError, match=r"no group has policy=none,seed=0: policy takes "
                                             r"none, strong"):
        rp.check_baseline_found(report)
    rp.check_baseline_found(_report(_values("none", NONE), pairing=PAIRING))
