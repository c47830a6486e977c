"""Typed configs and the ``params="k=v;k=v"`` parser shared by every entry script.

Each entry declares a frozen dataclass; its field defaults are the single source of truth for the
defaults (the README and the MLproject are checked against them by a test). Values are converted
from text by the field's type annotation, never evaluated as Python.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Callable


class ConfigError(ValueError):
    """A parameter the user gave is unknown, malformed or out of range."""


def spec(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
         max: float | None = None, aliases: tuple[str, ...] = (),
         open_choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()) -> Any:
    """A config field with its documentation and the checks its values must pass.

    ``open_choices`` are forms like ``"aws:<run id or file>"``, or a function that lists them
    when they are first needed: besides ``choices``, any value starting with the text before
    ``<`` is accepted (the entry checks the rest before training).
    """
    meta = {"help": help, "choices": choices, "min": min, "max": max, "aliases": aliases,
            "open_choices": open_choices}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults: configs are immutable")
    return dataclasses.field(default=default, metadata=meta)


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null"}


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if origin is tuple:
        return f"comma-separated list of {_describe(typing.get_args(annotation)[0])}"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _convert(text: str, annotation: Any) -> Any:
    """Convert ``text`` to ``annotation`` or raise ValueError."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        if type(None) in members and text.strip().lower() in _NONE:
            return None
        for member in members:
            if member is type(None):
                continue
            try:
                return _convert(text, member)
            except ValueError:
                continue
        raise ValueError(text)
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        pieces = [p.strip() for p in text.split(",") if p.strip()]
        return tuple(_convert(p, item_type) for p in pieces)
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(text)
    if annotation is int:
        stripped = text.strip()
        try:
            return int(stripped)
        except ValueError:
            as_float = float(stripped)  # accepts "1e3" but not "2.5"
            if not as_float.is_integer():
                raise
            return int(as_float)
    if annotation is float:
        return float(text.strip())
    if annotation is str:
        return text
    raise TypeError(f"unsupported config type {annotation!r}")


def _open_choices(meta: dict) -> tuple[str, ...]:
    forms = meta.get("open_choices", ())
    return forms() if callable(forms) else forms


def _check_range(name: str, value: Any, meta: dict) -> None:
    if value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if meta.get("choices") is not None and item not in meta["choices"]:
            open_choices = _open_choices(meta)
            if any(str(item).startswith(form.split("<")[0]) for form in open_choices):
                continue
            choices = ", ".join(map(str, (*meta["choices"], *open_choices)))
            close = difflib.get_close_matches(str(item), [str(c) for c in meta["choices"]], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{name}={item!r} is not allowed: expected one of {choices}.{hint}")
        if meta.get("min") is not None and item < meta["min"]:
            raise ConfigError(f"{name}={item!r} is out of range: expected a value >= "
                              f"{meta['min']}.")
        if meta.get("max") is not None and item > meta["max"]:
            raise ConfigError(f"{name}={item!r} is out of range: expected a value <= "
                              f"{meta['max']}.")


def field_names(config_cls: type) -> dict[str, str]:
    """Map every accepted key (field names and their aliases) to its field name."""
    names: dict[str, str] = {}
    for f in dataclasses.fields(config_cls):
        names[f.name] = f.name
        for alias in f.metadata.get("aliases", ()):
            names[alias] = f.name
    return names


def split_params(text: str) -> list[tuple[str, str]]:
    """Split ``"k=v;k=v"`` into pairs; empty pieces are skipped, values keep any '=' or '/'."""
    pairs = []
    for piece in (text or "").split(";"):
        piece = piece.strip()
        if not piece:
            continue
        key, sep, value = piece.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"params piece {piece!r} is not of the form key=value; "
                "write params as \"key=value;key=value\".")
        pairs.append((key.strip(), value.strip()))
    return pairs


PRESET_KEY = "preset"


def read_preset(presets_dir: Path, name: str) -> list[tuple[str, str]]:
    """The pairs of ``<presets_dir>/<name>.params``: "key=value" lines, '#' comments."""
    path = presets_dir / f"{name}.params"
    if not path.is_file():
        available = sorted(p.stem for p in presets_dir.glob("*.params"))
        close = difflib.get_close_matches(name, available, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"preset={name!r}: no file {path}.{hint} Available presets: "
                          f"{', '.join(available) or 'none'}.")
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    pairs = split_params(";".join(lines))
    if any(key == PRESET_KEY for key, _ in pairs):
        raise ConfigError(f"preset file {path} names another preset: presets do not nest.")
    return pairs


def parse_params(text: str, config_cls: type, presets_dir: Path | None = None, **fixed: Any):
    """Build ``config_cls`` from a params string; ``fixed`` holds values given outside params.

    ``preset=<name>`` starts from ``<presets_dir>/<name>.params``; the other keys of ``text``
    override the preset's.
    """
    accepted = field_names(config_cls)
    hints = typing.get_type_hints(config_cls)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    given_as: dict[str, str] = {}  # each parameter's first "key=value", as the user wrote it
    pairs = split_params(text)
    presets = [value for key, value in pairs if key == PRESET_KEY]
    if presets and presets_dir is not None and PRESET_KEY in accepted:
        overridden = {accepted.get(key, key) for key, _ in pairs}
        pairs = [(key, value) for key, value in read_preset(presets_dir, presets[-1])
                 if accepted.get(key, key) not in overridden] + pairs
    for key, raw in pairs:
        if key not in accepted:
            close = difflib.get_close_matches(key, list(accepted), n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown parameter '{key}'.{hint} "
                              f"Run with --help-params to list the parameters of this entry.")
        name = accepted[key]
        if name in given_as:
            raise ConfigError(f"parameter '{name}' is given twice ({given_as[name]} and "
                              f"{key}={raw}): give it once.")
        given_as[name] = f"{key}={raw}"
        try:
            value = _convert(raw, hints[name])
        except ValueError:
            raise ConfigError(f"{key}={raw!r} is not valid: expected {_describe(hints[name])}."
                              ) from None
        _check_range(key, value, fields[name].metadata)
        values[name] = value
    for name, value in fixed.items():
        if name in given_as:
            raise ConfigError(f"'{name}' is set both as an entry parameter and inside params: "
                              "give it once.")
        values[name] = value
    config = config_cls(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def describe_params(config_cls: type) -> str:
    """A help text listing every parameter, its type, default and meaning."""
    hints = typing.get_type_hints(config_cls)
    lines = []
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        extra = []
        if meta.get("choices"):
            extra.append("one of " + "|".join(map(str, (*meta["choices"], *_open_choices(meta)))))
        if meta.get("aliases"):
            extra.append("alias " + ", ".join(meta["aliases"]))
        suffix = f" ({'; '.join(extra)})" if extra else ""
        lines.append(f"  {f.name}: {_describe(hints[f.name])} = {f.default!r}{suffix}\n"
                     f"      {meta.get('help', '')}")
    return "\n".join(lines)


def as_flat_dict(config: Any) -> dict[str, Any]:
    """The resolved config as a flat dict of plain values (for logging)."""
    return {k: (",".join(map(str, v)) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(config).items()}


def whole_number(minimum: int, noun: str = "a whole number"):
    """An argparse type: a whole number >= ``minimum`` (``noun`` names it in the error); "5.0" is
    accepted because MLproject's float parameters arrive that way."""
    import argparse
    import math

    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not value.is_integer() or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {noun} >= {minimum}, got {text!r}")
        return int(value)

    return parse
