"""Sweep specs: a TOML file naming the runs behind a results table and the table to make.

The format is documented in the README ("Sweeps"). ``load_spec`` checks the file's structure,
``expand`` makes its trials, and ``check_trials`` has each trial's entry parse its params.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augssl.analysis.entries import ENTRIES, entry_config, logged_params
from augssl.config import ConfigError
from augssl.report import (
    SUMMARY_MODES,
    Pairing,
    ReportError,
    check_pairing,
    parse_filter,
    parse_group_by,
)

SWEEPS_DIR = Path(__file__).resolve().parents[3] / "experiments" / "sweeps"
# Sweep and report names become MLflow tag values in search filters and artifact folder names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# "{search}" in a line's param values: the run id of the earlier line named "search"
REFERENCE = re.compile(r"\{([A-Za-z0-9][A-Za-z0-9._-]*)\}")

Pairs = tuple[tuple[str, str], ...]


class SpecError(ValueError):
    """A sweep spec is malformed, or asks for a run its entry would refuse."""


@dataclass(frozen=True)
class Axis:
    """One grid key: each point sets one param (a list of values) or several (a list of tables)."""

    name: str
    points: tuple[Pairs, ...]


@dataclass(frozen=True)
class Line:
    entry: str
    params: str
    grid: tuple[Axis, ...] = ()
    name: str = ""
    """What later lines call this one's run id: ``{name}`` in their param values."""
    seeds: tuple[int, ...] = ()
    """This line's own seeds; empty: the spec's."""

    def references(self) -> set[str]:
        """The line names its params and grid values refer to."""
        texts = [self.params, *(value for axis in self.grid for point in axis.points
                                for _, value in point)]
        return {name for text in texts for name in REFERENCE.findall(text)}


@dataclass(frozen=True)
class ReportSpec:
    name: str
    group_by: tuple[str, ...]
    metric: str = "test/accuracy"
    summary: str = "final"
    k: int = 5
    filters: Mapping[str, str] = field(default_factory=dict)
    percent: bool | None = None
    title: str = ""
    pairing: Pairing | None = None  # differences to a baseline group, paired by the seed


@dataclass(frozen=True)
class SweepSpec:
    source: Path
    name: str
    experiment: str
    dataset: str
    network: str
    seeds: tuple[int, ...]
    lines: tuple[Line, ...]
    reports: tuple[ReportSpec, ...]
    seed_key: str = "seed"
    params: str = ""
    grid: tuple[Axis, ...] = ()


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: an entry, its full params string, and where it sits in the grid."""

    line: int
    entry: str
    dataset: str
    network: str
    params: str
    point: Pairs
    seed: int
    seed_key: str = "seed"
    references: tuple[tuple[str, str], ...] = ()
    """(line name, trial key) of each run whose id ``{name}`` in ``params`` stands for."""

    def with_run_ids(self, run_ids: Mapping[str, str]) -> str:
        """``params`` with each ``{name}`` replaced by the run id of the trial it refers to
        (``run_ids`` by trial key)."""
        keys = dict(self.references)
        return REFERENCE.sub(lambda match: run_ids[keys[match.group(1)]], self.params)

    @property
    def key(self) -> str:
        """Names the trial across reruns: the same command line gives the same key."""
        text = "\n".join((self.entry, self.dataset, self.network, self.params))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def point_text(self) -> str:
        return ";".join(f"{key}={value}" for key, value in self.point)

    @property
    def label(self) -> str:
        seed = f"{self.seed_key}={self.seed}"
        return " ".join(part for part in (self.entry, self.point_text, seed) if part)


_REQUIRED = object()
_TOML_KINDS = {str: "a string", int: "a whole number", bool: "true or false",
               list: "a list ([[key]] tables make one)", dict: "a table"}


def _check_keys(table: Mapping, allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise SpecError(f"{where}: unknown key '{key}'.{hint} Expected keys: "
                            f"{', '.join(allowed)}.")


def _get(table: Mapping, key: str, kind: type | tuple, where: str, default: Any = _REQUIRED):
    if key not in table:
        if default is _REQUIRED:
            raise SpecError(f"{where}: '{key}' is missing.")
        return default
    value = table[key]
    # TOML booleans are Python ints too: a number field must not take `true`.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(_TOML_KINDS[k] for k in kinds)
        raise SpecError(f"{where}: '{key}' = {value!r} has the wrong type: expected {expected}.")
    return value


def _param_text(value: Any, where: str) -> str:
    """A TOML value as the text a params string carries."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if ";" in value:
            raise SpecError(f"{where}: {value!r} holds ';', which would split it into several "
                            "params: give one value per grid point.")
        return value
    raise SpecError(f"{where}: {value!r} is not a param value: use a string, number or boolean.")


def _params_string(table: Mapping, where: str) -> str:
    return _get(table, "params", str, where, "").strip().strip(";")


def _axis(name: str, values: Any, where: str) -> Axis:
    where = f"{where}.{name}"
    if not isinstance(values, list) or not values:
        raise SpecError(f"{where}: expected a non-empty list of values, got {values!r}.")
    tables = [isinstance(value, dict) for value in values]
    if any(tables) and not all(tables):
        raise SpecError(f"{where}: mixes values and tables; use values (one param) or tables "
                        "(several params set together) throughout.")
    if all(tables):
        points = []
        for value in values:
            if not value:
                raise SpecError(f"{where}: an empty table sets no param.")
            points.append(tuple((key, _param_text(item, f"{where}.{key}"))
                                for key, item in value.items()))
    else:
        points = [((name, _param_text(value, where)),) for value in values]
    seen = set()
    for point in points:
        if point in seen:
            raise SpecError(f"{where}: the point {dict(point)} is listed twice.")
        seen.add(point)
    return Axis(name, tuple(points))


def _grid(table: Any, where: str) -> tuple[Axis, ...]:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: expected a table of keys with lists of values.")
    return tuple(_axis(name, values, where) for name, values in table.items())


def _line(index: int, table: Any) -> Line:
    where = f"line {index + 1}"
    if not isinstance(table, dict):
        raise SpecError(f"{where}: expected a table with entry, params and optionally grid.")
    _check_keys(table, ("entry", "name", "seeds", "params", "grid"), where)
    entry = _get(table, "entry", str, where)
    if entry not in ENTRIES:
        close = difflib.get_close_matches(entry, list(ENTRIES), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise SpecError(f"{where}: unknown entry '{entry}'.{hint} Entries a sweep can run: "
                        f"{', '.join(ENTRIES)}.")
    name = _get(table, "name", str, where, "")
    if name and not _NAME.fullmatch(name):
        raise SpecError(f"{where}: name {name!r}: use letters, digits, '.', '_' or '-'.")
    seeds = _seeds(table["seeds"], where) if "seeds" in table else ()
    return Line(entry, _params_string(table, where), _grid(table.get("grid", {}),
                                                           f"{where}.grid"), name, seeds)


def _check_references(lines: tuple[Line, ...], where: str) -> None:
    """Each ``{name}`` names an earlier line: a line runs once the lines it refers to ended."""
    earlier: dict[str, int] = {}
    for index, line in enumerate(lines):
        for name in sorted(line.references()):
            if name not in earlier:
                later = [i + 1 for i, other in enumerate(lines) if other.name == name]
                if later:
                    problem = (f"line {later[0]} is named '{name}', but a line can only take "
                               "the run id of a line above it: move it up")
                else:
                    close = difflib.get_close_matches(name, list(earlier), n=1)
                    hint = f" Did you mean '{{{close[0]}}}'?" if close else ""
                    named = ", ".join(f"{{{n}}}" for n in earlier) or "none"
                    problem = f"no line above is named '{name}'.{hint} Named lines: {named}"
                raise SpecError(f"line {index + 1}: {{{name}}}: {problem}.")
        if line.name:
            if line.name in earlier:
                raise SpecError(f"{where}: lines {earlier[line.name] + 1} and {index + 1} are "
                                f"both named '{line.name}': give each its own name.")
            earlier[line.name] = index


_REPORT_KEYS = ("name", "group_by", "metric", "summary", "k", "filter", "percent", "title",
                "baseline", "paired_by")


def _report(table: Any, where: str, seed_key: str) -> ReportSpec:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: expected a table.")
    _check_keys(table, _REPORT_KEYS, where)
    group_by = _get(table, "group_by", list, where, [])
    if not all(isinstance(key, str) for key in group_by):
        raise SpecError(f"{where}: 'group_by' must list param names as strings.")
    summary = _get(table, "summary", str, where, "final")
    if summary not in SUMMARY_MODES:
        raise SpecError(f"{where}: summary '{summary}' is unknown: expected one of "
                        f"{', '.join(SUMMARY_MODES)}.")
    k = _get(table, "k", int, where, 5)
    if k < 1:
        raise SpecError(f"{where}: k = {k}: expected a positive number of evaluations.")
    try:
        group_keys = parse_group_by(group_by)
        filters = parse_filter(_get(table, "filter", str, where, ""))
        baseline = parse_filter(_get(table, "baseline", str, where, ""))
        # runs pair by the sweep's seed: the same seed draws the same labelled images
        pairing = (Pairing(baseline, _get(table, "paired_by", str, where, seed_key))
                   if baseline else None)
        if pairing is not None:
            check_pairing(pairing, group_keys)
    except ReportError as error:
        raise SpecError(f"{where}: {error}") from None
    return ReportSpec(name=_get(table, "name", str, where, ""), group_by=group_keys,
                      metric=_get(table, "metric", str, where, "test/accuracy"), summary=summary,
                      k=k, filters=filters, percent=_get(table, "percent", bool, where, None),
                      title=_get(table, "title", str, where, ""), pairing=pairing)


def _reports(value: Any, seed_key: str) -> tuple[ReportSpec, ...]:
    tables = value if isinstance(value, list) else [value]
    if not tables:
        raise SpecError("report: give at least one report.")
    reports = tuple(_report(table, f"report {index + 1}" if len(tables) > 1 else "report",
                            seed_key)
                    for index, table in enumerate(tables))
    names = [report.name for report in reports]
    if len(reports) > 1 or names[0]:
        # Each report goes into report/<name>/ of the sweep run's artifacts.
        for name in names:
            if not _NAME.fullmatch(name):
                raise SpecError(f"report name {name!r}: with several reports each needs a name "
                                "of letters, digits, '.', '_' or '-'.")
        if len(set(names)) != len(names):
            raise SpecError(f"report names repeat ({', '.join(names)}): give each its own.")
    return reports


def _seeds(value: Any, where: str = "") -> tuple[int, ...]:
    place = f"{where}: " if where else ""
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
        raise SpecError(f"{place}seeds = {value!r}: expected a non-empty list of whole numbers "
                        ">= 0.")
    if len(set(value)) != len(value):
        raise SpecError(f"{place}seeds = {value!r}: a seed is listed twice.")
    return tuple(value)


_TOP_KEYS = ("experiment", "name", "dataset", "network", "seeds", "seed_key", "params", "line",
             "grid", "report")


def parse_spec(data: Mapping, source: Path) -> SweepSpec:
    """The spec of a parsed TOML document, its structure checked (not yet its params)."""
    _check_keys(data, _TOP_KEYS, str(source))
    where = str(source)
    name = _get(data, "name", str, where, source.stem)
    if not _NAME.fullmatch(name):
        raise SpecError(f"{where}: name {name!r}: use letters, digits, '.', '_' or '-'.")
    lines = _get(data, "line", list, where)
    if not lines:
        raise SpecError(f"{where}: no [[line]]: a sweep needs at least one.")
    seed_key = _get(data, "seed_key", str, where, "seed")
    grid = _grid(data.get("grid", {}), "grid")
    shared_references = Line("", _params_string(data, where), grid).references()
    if shared_references:
        raise SpecError(f"{where}: the top-level params and grid are every line's, so they "
                        f"cannot take a line's run id ({{{sorted(shared_references)[0]}}}): "
                        "give it in the lines that need it.")
    spec = SweepSpec(
        source=source, name=name, experiment=_get(data, "experiment", str, where),
        dataset=_get(data, "dataset", str, where), network=_get(data, "network", str, where),
        seeds=_seeds(_get(data, "seeds", list, where)), seed_key=seed_key,
        params=_params_string(data, where), grid=grid,
        lines=tuple(_line(index, table) for index, table in enumerate(lines)),
        reports=_reports(_get(data, "report", (dict, list), where), seed_key))
    _check_references(spec.lines, where)
    for index, line in enumerate(spec.lines):
        shared = {axis.name for axis in grid} & {axis.name for axis in line.grid}
        if shared:
            raise SpecError(f"line {index + 1}: grid key {', '.join(sorted(shared))} is also in "
                            "the top-level grid: give it in one place.")
    return spec


def load_spec(path: Path) -> SweepSpec:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise SpecError(f"cannot read {path}: {error.strerror}.") from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path} is not valid TOML: {error}.") from None
    return parse_spec(data, path)


def find_spec_file(name: str) -> Path:
    """``name`` as a path, or the name of a spec in experiments/sweeps/ (with or without .toml)."""
    given = Path(name)
    if given.is_file():
        return given
    for candidate in (SWEEPS_DIR / name, SWEEPS_DIR / f"{name}.toml"):
        if candidate.is_file():
            return candidate
    available = sorted(p.stem for p in SWEEPS_DIR.glob("*.toml"))
    raise SpecError(f"no sweep spec {name!r}: not a file, nor a spec in {SWEEPS_DIR} "
                    f"(there: {', '.join(available) or 'none'}).")


def _referred_trial(name: str, seed: int, named: list[Trial], where: str) -> Trial:
    """The trial of the line ``name`` that a trial of ``seed`` takes the run id of: the one of
    the same seed, or the line's only trial."""
    candidates = named if len(named) == 1 else [trial for trial in named if trial.seed == seed]
    if len(candidates) != 1:
        found = f"{len(candidates)} trials" if candidates else "no trial"
        raise SpecError(f"{where}: {{{name}}} is ambiguous for seed {seed}: line '{name}' has "
                        f"{found} of that seed. A line whose run id others take needs one trial "
                        "in all, or one per seed of the lines that take it.")
    return candidates[0]


def expand(spec: SweepSpec) -> list[Trial]:
    """Every trial: each line crossed with the top-level grid, its own grid and the seeds (the
    line's own, if it has them)."""
    trials: list[Trial] = []
    by_line: dict[str, list[Trial]] = {}
    for index, line in enumerate(spec.lines):
        axes = spec.grid + line.grid
        line_trials = []
        for point in itertools.product(*(axis.points for axis in axes)):
            pairs = tuple(itertools.chain.from_iterable(point))
            for seed in line.seeds or spec.seeds:
                pieces = [spec.params, line.params, *(f"{k}={v}" for k, v in pairs),
                          f"{spec.seed_key}={seed}"]
                params = ";".join(piece for piece in pieces if piece)
                references = tuple(
                    (name, _referred_trial(name, seed, by_line[name], f"line {index + 1}").key)
                    for name in sorted(set(REFERENCE.findall(params))))
                line_trials.append(Trial(index, line.entry, spec.dataset, spec.network, params,
                                         pairs, seed, spec.seed_key, references))
        if line.name:
            by_line[line.name] = line_trials
        trials.extend(line_trials)
    first: dict[str, Trial] = {}
    for trial in trials:
        if trial.key in first:
            raise SpecError(f"line {first[trial.key].line + 1} ({first[trial.key].label}) and "
                            f"line {trial.line + 1} ({trial.label}) are the same run: "
                            f"{trial.entry} with params {trial.params!r}.")
        first[trial.key] = trial
    return trials


# Stands in for a run id not known before the sweep runs, so that a value waiting for one is
# still parsed up front: the form of an MLflow run id (32 hex digits).
STAND_IN_RUN_ID = "0" * 32


def _with_stand_in_run_ids(params: str) -> tuple[str, set[str]]:
    """``params`` with every reference replaced by a stand-in run id, and the keys whose values
    held one: the entry parses those values now and looks the run up when the trial starts."""
    items = (item.partition("=") for item in params.split(";"))
    waiting = {key.strip() for key, _, value in items if REFERENCE.search(value)}
    return REFERENCE.sub(STAND_IN_RUN_ID, params), waiting


def check_trials(spec: SweepSpec) -> list[Trial]:
    """Every trial of ``spec``, each parsed by its entry's own config as its run will be; and the
    report keys checked against the params the runs will log. SpecError on the first problem."""
    trials = expand(spec)
    for trial in trials:
        params, waiting = _with_stand_in_run_ids(trial.params)
        unknown = sorted(waiting - logged_params(trial.entry))
        if unknown:
            raise SpecError(f"line {trial.line + 1} ({trial.label}): '{unknown[0]}' is not a "
                            f"param of {trial.entry}.")
        try:
            config = entry_config(trial.entry, trial.dataset, trial.network, params)
        except ConfigError as error:
            raise SpecError(f"line {trial.line + 1} ({trial.label}): {error}") from None
        if config.resume:
            raise SpecError(f"line {trial.line + 1}: resume is set by the sweep itself (a rerun "
                            "resumes interrupted trials): remove it from the params.")
    # Imported here: the models load torch, which a Ray worker unpickling a Trial does not need.
    from augssl.models import check_model_name

    try:
        check_model_name(spec.network)
    except ValueError as error:
        raise SpecError(f"network: {error}") from None
    known = sorted(set().union(*(logged_params(line.entry) for line in spec.lines)))
    for index, report in enumerate(spec.reports):
        paired_by = (report.pairing.paired_by,) if report.pairing else ()
        for key in (*report.group_by, *report.filters, *paired_by):
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise SpecError(f"report {report.name or index + 1}: '{key}' is not a param the "
                                f"trials log.{hint}")
    return trials
