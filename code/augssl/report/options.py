"""The report's options as the CLI, the MLproject entry and sweep specs give them (text in
which "" means unset)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from augssl.report.errors import ReportError


def parse_filter(text: str | None) -> dict[str, str]:
    """Parse ``"key=value;key2=value2"`` into a dict; empty or None means no filter."""
    filters: dict[str, str] = {}
    for clause in (text or "").split(";"):
        clause = clause.strip()
        if not clause:
            continue
        key, sep, value = clause.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ReportError(
                f"invalid filter clause {clause!r}: expected 'key=value' clauses separated by "
                "';', e.g. 'entry=train;dataset=FashionMNIST'"
            )
        if key in filters and filters[key] != value:
            raise ReportError(
                f"filter key {key!r} is given twice ({filters[key]!r} and {value!r}); "
                "a run has one value per param, so keep only one clause for it"
            )
        filters[key] = value
    return filters


def parse_group_by(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Parse ``"policy,num_labelled_samples"`` (or a list) into a tuple of keys; empty means no
    grouping."""
    items = text.split(",") if isinstance(text, str) else (text or ())
    keys = tuple(item.strip() for item in items if item.strip())
    duplicates = sorted(key for key, count in Counter(keys).items() if count > 1)
    if duplicates:
        raise ReportError(f"group-by keys repeated: {', '.join(duplicates)}; list each key once")
    return keys


def format_filter(filters: Mapping[str, str]) -> str:
    return ";".join(f"{key}={value}" for key, value in filters.items())
