"""The one error of reports, and the 'did you mean' hint its messages share."""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class ReportError(ValueError):
    """A report cannot be built from the given experiment, filter, metric or grouping."""


def closest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate closest to a mistyped ``word``, if any is close."""
    close = difflib.get_close_matches(word, candidates, n=1)
    return close[0] if close else None


def closest_hint(word: str, candidates: Sequence[str]) -> str:
    match = closest(word, candidates)
    return f" (did you mean {match!r}?)" if match else ""
