"""Where data sets live by default, and finding a data set's files among candidate folders."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "AUGSSL_DATA_DIR"


def default_data_root() -> Path:
    """``$AUGSSL_DATA_DIR`` when set, else the repository's ``input/`` folder.

    When the package runs from an installed copy rather than the repository's ``code/`` folder,
    the fallback is ``input/`` under the current directory.
    """
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    code_dir = Path(__file__).resolve().parents[2]
    if code_dir.name == "code":
        return code_dir.parent / "input"
    return Path.cwd() / "input"


def resolve_data_root(data_path: str | os.PathLike | None) -> Path:
    """``data_path``, or the default root when it is None or "" (an unset config string)."""
    if data_path is None or os.fspath(data_path) == "":
        return default_data_root()
    return Path(data_path).expanduser()


@dataclass(frozen=True)
class Search:
    """The outcome of looking for a file set: where it was found, and what each place lacked."""

    files: dict[str, Path] | None
    searched: tuple[str, ...]


def find_file_set(candidates: Sequence[Path], required: Mapping[str, Sequence[str]]) -> Search:
    """The first candidate folder holding every required file.

    ``required`` maps a role (e.g. "train_images") to the file names accepted for it, in order of
    preference (e.g. the plain file before its .gz). ``searched`` describes every folder looked
    at, with the names it lacked, for error messages.
    """
    searched = []
    seen = set()
    for folder in candidates:
        if folder in seen:
            continue
        seen.add(folder)
        if not folder.is_dir():
            searched.append(f"{folder} (no such folder)")
            continue
        found, missing = {}, []
        for role, names in required.items():
            match = next((folder / n for n in names if (folder / n).is_file()), None)
            if match is None:
                missing.append(" or ".join(names))
            else:
                found[role] = match
        if not missing:
            return Search(found, tuple(searched))
        searched.append(f"{folder} (missing {', '.join(missing)})")
    return Search(None, tuple(searched))
