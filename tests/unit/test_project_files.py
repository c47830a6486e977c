"""The MLproject, README and configs say the same thing."""

import dataclasses
import re
from pathlib import Path

import yaml

from augssl.engine.config import TrainingConfig

ROOT = Path(__file__).resolve().parents[2]


def _mlproject(folder: Path) -> dict:
    return yaml.safe_load((folder / "MLproject").read_text())


def test_experiments_folder_is_the_same_project():
    assert _mlproject(ROOT / "experiments") == _mlproject(ROOT)
    for name in ("code", "python_env.yaml", "conda.yaml", "requirements.txt"):
        assert (ROOT / "experiments" / name).resolve() == (ROOT / name).resolve(), name


def test_every_entry_runs_an_existing_script_with_its_parameters():
    for name, entry in _mlproject(ROOT)["entry_points"].items():
        script = re.search(r"python (\S+\.py)", entry["command"]).group(1)
        assert (ROOT / script).is_file(), (name, script)
        for parameter in entry["parameters"]:
            assert "{" + parameter + "}" in entry["command"], (name, parameter)


def test_mlflow_reads_main_and_main_uda_as_the_same_entry(tmp_path):
    from mlflow.projects._project_spec import load_project

    project = load_project(str(ROOT))
    main, uda = project.get_entry_point("main"), project.get_entry_point("main_uda")
    params = {"dataset": "FashionMNIST", "params": "seed=1;num_epochs=2"}
    assert main.compute_command(params, str(tmp_path)) == uda.compute_command(params, str(tmp_path))
    assert main.compute_command(params, str(tmp_path)) == (
        "python code/main_uda.py FashionMNIST wideresnet --params 'seed=1;num_epochs=2'")
    assert {name: (p.type, p.default) for name, p in main.parameters.items()} == {
        name: (p.type, p.default) for name, p in uda.parameters.items()}


def test_training_entries_default_to_the_config_defaults():
    defaults = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}
    train = _mlproject(ROOT)["entry_points"]["train"]["parameters"]
    assert train["dataset"]["default"] == defaults["dataset"]
    assert train["network"]["default"] == defaults["network"]


def _readme_defaults(section_start: str) -> dict[str, str]:
    rows = {}
    text = (ROOT / "README.md").read_text()
    section = text.split(section_start, 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        match = re.match(r"\| ((?:`\w+`(?:, )?)+) \| ([^|]+) \|", line)
        if match:
            keys = re.findall(r"`(\w+)`", match.group(1))
            values = [v.strip() for v in match.group(2).split(",")]
            rows.update(zip(keys, values))
    return rows


def _matches(default, text: str) -> bool:
    text = text.split(" (")[0].strip('"')
    if isinstance(default, bool):
        return text == str(default).lower()
    if isinstance(default, str):
        return text == default
    return type(default)(float(text)) == default


def test_readme_parameter_table_matches_the_config():
    defaults = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}
    documented = _readme_defaults("The shared parameters")
    assert len(documented) >= 15
    for key, text in documented.items():
        if key == "data_path":
            assert defaults[key] == "" and text == "`input/<dataset>`"
        else:
            assert _matches(defaults[key], text), key


def test_readme_uda_table_matches_the_uda_config():
    from main_uda import UdaConfig

    fields = {f.name: f for f in dataclasses.fields(UdaConfig)}
    names = {alias: name for name, f in fields.items() for alias in f.metadata["aliases"]}
    documented = _readme_defaults("## UDA")
    assert len(documented) >= 15
    for key, text in documented.items():
        assert _matches(fields[names.get(key, key)].default, text), key


def test_readme_fixmatch_table_matches_the_fixmatch_config():
    from fixmatch import FixmatchConfig

    fields = {f.name: f for f in dataclasses.fields(FixmatchConfig)}
    documented = _readme_defaults("## FixMatch")
    assert len(documented) >= 12
    for key, text in documented.items():
        assert _matches(fields[key].default, text), key


def test_usage_examples_in_script_docstrings_keep_their_line_continuations():
    # A "\" at a line's end inside a plain string joins the lines: the help text would show
    # "... num_labelled_samples         --metric ..." instead of the command as written.
    import ast

    joined = []
    for script in sorted((ROOT / "code").glob("*.py")):
        source = script.read_text()
        module = ast.parse(source)
        first = module.body[0] if module.body else None
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
            continue
        text = ast.get_source_segment(source, first)
        if "\\\n" in text and not text.lower().startswith("r"):
            joined.append(script.name)
    assert not joined, f"raw docstrings needed (r\"\"\"...\"\"\") in {joined}"
