"""Errors raised when a data set cannot be found or read."""

from __future__ import annotations

from collections.abc import Sequence


class DatasetNotFoundError(FileNotFoundError):
    """A data set is absent from every place searched and could not be downloaded.

    The message names the data set, every path searched (with what was missing there) and how to
    get the data; ``dataset`` and ``searched`` keep the same facts for programs.
    """

    def __init__(self, dataset: str, searched: Sequence[str], how_to_get: str,
                 download_error: str | None = None) -> None:
        self.dataset = dataset
        self.searched = tuple(searched)
        lines = [f"Data set '{dataset}' was not found. Searched:"]
        lines += [f"  - {place}" for place in self.searched] or ["  (nowhere: no path to search)"]
        if download_error is not None:
            lines.append(f"Downloading it failed: {download_error}")
        lines.append(f"How to get it: {how_to_get}")
        super().__init__("\n".join(lines))


class DatasetFormatError(ValueError):
    """A data file exists but does not hold what its format promises (corrupt or truncated)."""
