"""The training entries a sweep can run, and their own command-line parsing for checking a trial.

An entry's config class lives in its script (``code/<entry>.py``), which is importable because
``code/`` is on the path of ``code/sweep.py`` (and of the tests). Scripts are imported only when
a trial is checked: they load torch.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path

from augssl.engine.entry import parse_command_line

CODE_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class EntryScript:
    script: str
    module: str
    config: str
    rewrite_argv: str = ""
    """A function of ``module`` the script applies to its arguments before parsing them."""


# tests/unit/test_sweep_spec.py checks this table against the MLproject's training entries.
ENTRIES = {
    "train": EntryScript("train.py", "train", "TrainConfig"),
    "main_uda": EntryScript("main_uda.py", "main_uda", "UdaConfig"),
    "main_uda2": EntryScript("main_uda2.py", "main_uda2", "Uda2Config"),
    "fixmatch": EntryScript("fixmatch.py", "fixmatch", "FixmatchConfig"),
    # fs_baseline and fs_mixup are realmix's command line under another name
    "realmix": EntryScript("realmix.py", "realmix", "RealmixConfig", "expand_split_name"),
    "fs_baseline": EntryScript("fs_baseline.py", "realmix", "RealmixConfig", "expand_split_name"),
    "fs_mixup": EntryScript("fs_mixup.py", "realmix", "RealmixConfig", "expand_split_name"),
    "aws_search": EntryScript("aws_search.py", "aws_search", "AwsSearchConfig"),
    "autodo": EntryScript("autodo.py", "autodo", "AutodoConfig"),
}


def script_path(entry: str) -> Path:
    return CODE_DIR / ENTRIES[entry].script


def config_class(entry: str) -> type:
    return getattr(importlib.import_module(ENTRIES[entry].module), ENTRIES[entry].config)


def entry_config(entry: str, dataset: str, network: str, params: str):
    """The config ``code/<entry>.py <dataset> <network> --params <params>`` would run with;
    ConfigError where the entry would refuse its params."""
    argv = [dataset, network, "--params", params]
    rewrite = ENTRIES[entry].rewrite_argv
    if rewrite:
        argv = getattr(importlib.import_module(ENTRIES[entry].module), rewrite)(argv)
    return parse_command_line(entry, config_class(entry), argv)


def logged_params(entry: str) -> set[str]:
    """The params every run of ``entry`` logs: its config keys and the entry's name."""
    return {"entry", *(f.name for f in dataclasses.fields(config_class(entry)))}
