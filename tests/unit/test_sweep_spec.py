"""Sweep specs: structure, expansion into trials, checks against the entries, the spec files."""

import re
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import sweep
from augssl.analysis import runs
from augssl.analysis.entries import ENTRIES
from augssl.analysis.executors import ExecutorError, choose_executor
from augssl.analysis.runner import stages, with_run_ids
from augssl.analysis.spec import (
    SWEEPS_DIR,
    SpecError,
    check_trials,
    expand,
    find_spec_file,
    load_spec,
    parse_spec,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path("demo.toml")


def _data(**changes) -> dict:
    data = {"experiment": "demo", "dataset": "FashionMNIST", "network": "smallcnn",
            "seeds": [0, 1], "line": [{"entry": "train", "params": "num_epochs=1"}],
            "report": {"group_by": ["policy"]}}
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def _spec(**changes):
    return parse_spec(_data(**changes), SOURCE)


def test_lines_are_crossed_with_both_grids_and_the_seeds():
    spec = _spec(params="batch_size=32", grid={"policy": ["none", "cutout"]},
                 line=[{"entry": "train", "params": "num_epochs=1"},
                       {"entry": "main_uda", "grid": {"bias": [{"learning_rate": 0.1,
                                                                 "nesterov": False}]}}])
    trials = expand(spec)
    assert len(trials) == 2 * 2 + 2 * 1 * 2
    first = trials[0]
    assert first.params == "batch_size=32;num_epochs=1;policy=none;seed=0"
    assert first.label == "train policy=none seed=0"
    uda = [t for t in trials if t.entry == "main_uda"]
    assert uda[0].params == "batch_size=32;policy=none;learning_rate=0.1;nesterov=false;seed=0"
    assert uda[0].point_text == "policy=none;learning_rate=0.1;nesterov=false"
    assert len({t.key for t in trials}) == len(trials)


def test_a_trial_key_depends_on_its_command_line_only():
    (a, _), (b, _) = expand(_spec()), expand(_spec(name="other", experiment="x"))
    assert a.key == b.key
    (c, _) = expand(_spec(dataset="MNIST"))
    assert c.key != a.key


def test_seed_key_names_the_param_the_seeds_set():
    trials = expand(_spec(seed_key="run", line=[{"entry": "autodo"}]))
    assert [t.params for t in trials] == ["run=0", "run=1"]
    assert [t.seed for t in trials] == [0, 1]
    assert trials[1].label == "autodo run=1"


SEARCH = {"entry": "aws_search", "name": "search", "seeds": [0],
          "params": "search_loops=2;evaluations_per_loop=2"}


def test_a_line_takes_the_run_id_of_a_named_line_above_it():
    spec = _spec(line=[SEARCH, {"entry": "train", "grid": {"policy": ["aws:{search}", "none"]}}])
    trials = check_trials(spec)  # the policy waiting for a run id is checked when it starts
    search, *train = trials
    assert search.seed == 0 and search.references == ()
    assert [t.label for t in train] == ["train policy=aws:{search} seed=0",
                                        "train policy=aws:{search} seed=1",
                                        "train policy=none seed=0", "train policy=none seed=1"]
    # both seeds take the only search; the key is the command line as written in the spec
    assert train[0].references == train[1].references == (("search", search.key),)
    assert train[2].references == ()
    assert train[1].with_run_ids({search.key: "a" * 32}) == f"policy=aws:{'a' * 32};seed=1"
    assert expand(spec)[1].key == train[0].key


def test_a_named_line_with_a_run_per_seed_gives_each_trial_the_run_of_its_seed():
    first = {"entry": "train", "name": "first"}
    spec = _spec(line=[first, {"entry": "train", "params": "policy=aws:{first}"}])
    trials = expand(spec)
    assert [(t.seed, t.references) for t in trials[2:]] == [
        (0, (("first", trials[0].key),)), (1, (("first", trials[1].key),))]


@pytest.mark.parametrize("lines, message", [
    ([SEARCH, {"entry": "train", "params": "policy=aws:{serch}"}],
     "line 2: {serch}: no line above is named 'serch'. Did you mean '{search}'?"),
    ([{"entry": "train", "params": "policy=aws:{search}"}, SEARCH],
     "line 1: {search}: line 2 is named 'search', but a line can only take the run id of a line "
     "above it"),
    ([SEARCH, {**SEARCH, "params": "search_loops=3"}], "lines 1 and 2 are both named 'search'"),
    ([{**SEARCH, "name": "a b"}], "line 1: name 'a b'"),
    ([{**SEARCH, "seeds": []}], "line 1: seeds = []: expected a non-empty list"),
    ([{**SEARCH, "grid": {"search_loops": [1, 2]}},
      {"entry": "train", "params": "policy=aws:{search}"}],
     "line 2: {search} is ambiguous for seed 0: line 'search' has 2 trials of that seed"),
    ([{**SEARCH, "seeds": [5], "grid": {"search_loops": [1, 2]}},
      {"entry": "train", "params": "policy=aws:{search}"}],
     "line 2: {search} is ambiguous for seed 0: line 'search' has no trial of that seed"),
])
def test_a_reference_to_a_line_is_refused_unless_it_names_one_run_above(lines, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        expand(_spec(line=lines))


def test_the_top_level_params_cannot_take_a_lines_run_id():
    with pytest.raises(SpecError, match=re.escape("cannot take a line's run id ({search})")):
        _spec(params="policy=aws:{search}", line=[SEARCH])


def test_a_param_waiting_for_a_run_id_must_still_be_one_of_the_entrys():
    spec = _spec(line=[SEARCH, {"entry": "train", "params": "polcy=aws:{search}"}])
    with pytest.raises(SpecError, match="'polcy' is not a param of train"):
        check_trials(spec)


@pytest.mark.parametrize("params, message", [
    ("policy=asw:{search}", "policy='asw:"),
    ("num_epochs={search}", "num_epochs"),
])
def test_a_value_waiting_for_a_run_id_is_checked_before_any_trial_runs(params, message):
    # the value is read with a stand-in run id: a mistyped form fails up front, not when the
    # search has run for an hour and its trial starts
    spec = _spec(line=[SEARCH, {"entry": "train", "params": params}])
    with pytest.raises(SpecError, match=re.escape(message)) as caught:
        check_trials(spec)
    assert str(caught.value).startswith("line 2 (train ")


@pytest.mark.parametrize("changes, message", [
    ({"experiments": "x"}, "unknown key 'experiments'. Did you mean 'experiment'?"),
    ({"experiment": None}, "'experiment' is missing"),
    ({"seeds": []}, "non-empty list of whole numbers"),
    ({"seeds": [0, -1]}, "whole numbers >= 0"),
    ({"seeds": [True]}, "whole numbers >= 0"),
    ({"seeds": [1, 1]}, "listed twice"),
    ({"name": "a b"}, "name 'a b'"),
    ({"line": []}, "no [[line]]"),
    ({"line": {"entry": "train"}}, "expected a list ([[key]] tables make one)"),
    ({"line": [{"entry": "trian"}]}, "line 1: unknown entry 'trian'. Did you mean 'train'?"),
    ({"line": [{"entry": "train", "seed": 1}]}, "line 1: unknown key 'seed'"),
    ({"line": [{"entry": "train", "params": 3}]}, "'params' = 3 has the wrong type: expected a "
                                                  "string"),
    ({"grid": {"policy": []}}, "grid.policy: expected a non-empty list"),
    ({"grid": {"policy": "none"}}, "grid.policy: expected a non-empty list"),
    ({"grid": {"policy": ["none", {"cutout_size": 8}]}}, "mixes values and tables"),
    ({"grid": {"policy": ["none", "none"]}}, "listed twice"),
    ({"grid": {"policy": ["none;seed=1"]}}, "holds ';'"),
    ({"grid": {"policy": [["none"]]}}, "is not a param value"),
    ({"grid": {"b": [{}]}}, "an empty table sets no param"),
    ({"grid": {"policy": ["none"]},
      "line": [{"entry": "train", "grid": {"policy": ["cutout"]}}]}, "also in the top-level grid"),
    ({"report": {"summary": "best"}}, "summary 'best' is unknown"),
    ({"report": {"k": 0}}, "k = 0"),
    ({"report": {"group_by": "policy"}}, "'group_by' = 'policy' has the wrong type"),
    ({"report": {"group_by": ["policy", "policy"]}}, "group-by keys repeated"),
    ({"report": {"filter": "policy"}}, "invalid filter clause"),
    ({"report": {"percent": 1}}, "'percent' = 1 has the wrong type"),
    ({"report": [{"group_by": ["policy"]}, {"group_by": ["seed"]}]}, "each needs a name"),
    ({"report": [{"name": "a"}, {"name": "a"}]}, "report names repeat"),
    ({"report": []}, "at least one report"),
    ({"report": {"group_by": ["policy"], "baseline": "seed=0"}},
     "baseline key 'seed' is not a group-by key"),
    ({"report": {"group_by": ["policy"], "baseline": "policy"}}, "invalid filter clause"),
])
def test_a_malformed_spec_is_refused_with_the_place_and_the_fix(changes, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        _spec(**changes)


def test_a_report_baseline_pairs_runs_by_the_sweeps_seed_key_unless_told_otherwise():
    report = {"group_by": ["policy"], "baseline": "policy=none"}
    assert _spec(report=report).reports[0].pairing.paired_by == "seed"
    paired = _spec(report=report, seed_key="run").reports[0].pairing
    assert (dict(paired.baseline), paired.paired_by) == ({"policy": "none"}, "run")
    assert _spec(report={**report, "paired_by": "num_labelled_samples"}).reports[0].pairing \
        .paired_by == "num_labelled_samples"
    assert _spec().reports[0].pairing is None


def test_trials_that_are_the_same_run_are_refused():
    spec = _spec(line=[{"entry": "train", "params": "num_epochs=1;policy=none"},
                       {"entry": "train", "params": "policy=none;num_epochs=1"}])
    assert len(expand(spec)) == 4  # another order is another command line
    spec = _spec(line=[{"entry": "train"}, {"entry": "train"}])
    with pytest.raises(SpecError, match="line 1 .* and line 2 .* are the same run"):
        expand(spec)


@pytest.mark.parametrize("changes, message", [
    ({"line": [{"entry": "train", "params": "unlabelled_batch_size=96"}]},
     "line 1 (train seed=0): unknown parameter 'unlabelled_batch_size'"),
    ({"line": [{"entry": "train", "grid": {"policy": ["none", "cutuot"]}}]},
     "line 1 (train policy=cutuot seed=0): policy='cutuot' is not allowed"),
    ({"line": [{"entry": "train", "params": "seed=3"}]}, "parameter 'seed' is given twice"),
    ({"line": [{"entry": "train", "params": "num_epochs=0"}]}, "num_epochs=0 is out of range"),
    ({"line": [{"entry": "train", "params": "resume=abc"}]}, "resume is set by the sweep"),
    ({"network": "smalcnn"}, "network: unknown model name 'smalcnn'"),
    ({"report": {"group_by": ["polcy"]}}, "'polcy' is not a param the trials log. Did you mean "
                                          "'policy'?"),
    ({"report": {"filter": "strong_policy=none"}}, "'strong_policy' is not a param"),
    ({"report": {"group_by": ["policy"], "baseline": "policy=none", "paired_by": "sed"}},
     "'sed' is not a param the trials log. Did you mean 'seed'?"),
])
def test_params_and_report_keys_are_checked_by_the_entries_before_any_run(changes, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        check_trials(_spec(**changes))


def test_entry_keys_and_realmix_split_names_parse_as_the_entries_do():
    spec = _spec(dataset="cifar10.3@250-500", seeds=[0], seed_key="aug_copy",
                 line=[{"entry": "fs_mixup", "params": "beta=0.5"}],
                 report={"group_by": ["entry", "beta"]})
    (trial,) = check_trials(spec)
    assert trial.params == "beta=0.5;aug_copy=0"
    with pytest.raises(SpecError, match="'seed' is given twice"):
        check_trials(_spec(dataset="cifar10.3@250-500", line=[{"entry": "realmix"}]))


# The runs behind each of the README's tables.
SPEC_TRIALS = {"fashion_mnist_train": 30, "fashion_mnist_train_longer": 2,
               "fashion_mnist_uda": 9, "fashion_mnist_realmix": 15, "fashion_mnist_mismatch": 16,
               "fashion_mnist_autodo": 45, "fashion_mnist_aws": 16,
               "fashion_mnist_ssl": 27, "fashion_mnist_ssl_longer": 4,
               "fashion_mnist_ssl_same_labels": 18, "fashion_mnist_ssl_wider": 6,
               "fashion_mnist_ssl_same_labels_longer": 18}


@pytest.mark.parametrize("name, count", SPEC_TRIALS.items())
def test_the_spec_files_check_and_make_the_runs_of_their_scripts(name, count):
    trials = check_trials(load_spec(find_spec_file(name)))
    assert len(trials) == count


def test_the_autodo_spec_gives_every_method_its_bias_and_run():
    trials = check_trials(load_spec(SWEEPS_DIR / "fashion_mnist_autodo.toml"))
    sep = [t for t in trials if "aug_model=SEP" in t.params]
    assert len(sep) == 9
    assert sep[0].params.endswith(";ir=10;nr=0;aug_model=SEP;loss_model=BOTH;hyper_opt=HES;run=0")


def test_a_spec_is_found_by_path_or_by_name(tmp_path):
    assert find_spec_file("fashion_mnist_uda") == SWEEPS_DIR / "fashion_mnist_uda.toml"
    assert find_spec_file("fashion_mnist_uda.toml") == SWEEPS_DIR / "fashion_mnist_uda.toml"
    path = tmp_path / "mine.toml"
    path.write_text("")
    assert find_spec_file(str(path)) == path
    with pytest.raises(SpecError, match="no sweep spec 'fashion'.*fashion_mnist_uda"):
        find_spec_file("fashion")
    path.write_text("experiment = ")
    with pytest.raises(SpecError, match="is not valid TOML"):
        load_spec(path)
    assert load_spec(SWEEPS_DIR / "fashion_mnist_uda.toml").name == "fashion_mnist_uda"


def test_a_sweep_runs_every_training_entry_of_the_mlproject():
    entries = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]
    training = {name for name, entry in entries.items()
                if set(entry["parameters"]) == {"dataset", "network", "params"}}
    assert set(ENTRIES) == training - {"main"}  # `main` is main_uda under its old name
    for name, script in ENTRIES.items():
        assert f"python code/{script.script} " in entries[name]["command"], name


def test_the_readme_example_is_a_valid_spec():
    section = (ROOT / "README.md").read_text().split("## Sweeps: `sweep`", 1)[1].split("\n## ")[0]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = parse_spec(tomllib.loads(example), Path("example.toml"))
    assert len(check_trials(spec)) == (1 + 2) * 2 * 2 * 3


def test_a_refused_spec_exits_2_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.toml"
    path.write_text('experiment = "x"\ndataset = "FashionMNIST"\nnetwork = "smallcnn"\n'
                    'seeds = [0]\n[[line]]\nentry = "train"\nparams = "num_epoch=2"\n'
                    '[report]\ngroup_by = ["policy"]\n')
    assert sweep.main([str(path)]) == 2
    error = capsys.readouterr().err
    assert "sweep: error: line 1 (train seed=0): unknown parameter 'num_epoch'" in error
    assert "Did you mean 'num_epochs'?" in error
    assert list(tmp_path.iterdir()) == [path]  # no tracking store was made


def test_dry_run_lists_the_commands(capsys):
    assert sweep.main(["fashion_mnist_uda", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9
    assert lines[3].startswith("python code/main_uda.py FashionMNIST smallcnn --params '")


def test_the_executor_is_ray_where_it_is_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed, whatever this machine has
    assert choose_executor("auto", "") == "inprocess"
    with pytest.raises(ExecutorError, match="pip install ray"):
        choose_executor("ray", "")
    with pytest.raises(ExecutorError, match="pip install ray"):
        choose_executor("auto", "auto")
    with pytest.raises(ExecutorError, match="needs executor ray"):
        choose_executor("inprocess", "ray://head:10001")


# ---------------------------------------------------------------------------------------------
# What a rerun does with each trial, against a stand-in for the MLflow client


class _Client:
    def __init__(self, checkpoints: set[str]):
        self.checkpoints, self.created, self.terminated = checkpoints, [], {}

    def list_artifacts(self, run_id, path):
        names = ["checkpoint_6.pt"] if run_id in self.checkpoints else []
        return [SimpleNamespace(path=f"{path}/{name}") for name in names]

    def create_run(self, experiment, tags, run_name):
        self.created.append((tags, run_name))
        return SimpleNamespace(info=SimpleNamespace(run_id=f"new{len(self.created)}"))

    def update_run(self, run_id, status):
        assert status == "SCHEDULED"

    def set_terminated(self, run_id, status):
        self.terminated[run_id] = status


def _run(run_id, status):
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id, status=status))


def test_a_rerun_skips_finished_trials_resumes_from_checkpoints_and_retries_the_rest():
    trials = expand(_spec(seeds=[0, 1, 2, 3, 4, 5]))
    latest = {trials[0].key: _run("done", "FINISHED"),
              trials[1].key: _run("cut", "RUNNING"),       # interrupted after a checkpoint
              trials[2].key: _run("crashed", "FAILED"),    # failed after a checkpoint
              trials[3].key: _run("waiting", "SCHEDULED"),  # never started
              trials[4].key: _run("early", "RUNNING")}     # interrupted before a checkpoint
    client = _Client(checkpoints={"cut", "crashed"})
    done, todo = runs.plan(client, "1", "sweep", "demo", trials, latest)
    assert done == [trials[0]]
    assert [(item.trial, item.run_id, item.resume) for item in todo] == [
        (trials[1], "cut", True), (trials[2], "crashed", True), (trials[3], "waiting", False),
        (trials[4], "new1", False), (trials[5], "new2", False)]
    assert client.terminated == {"early": "KILLED"}
    tags, name = client.created[1]
    assert name == "train seed=5"
    assert tags == {runs.PARENT_TAG: "sweep", runs.SWEEP_TAG: "demo",
                    runs.TRIAL_TAG: trials[5].key, runs.ENTRY_TAG: "train", runs.POINT_TAG: "",
                    runs.SEED_TAG: "5", runs.PARAMS_TAG: "num_epochs=1;seed=5"}


def test_trials_run_after_the_trials_whose_run_ids_they_take():
    spec = _spec(line=[{"entry": "train", "name": "a"}, {"entry": "train", "name": "b",
                                                         "params": "policy=aws:{a}"},
                       {"entry": "train", "params": "policy=aws:{b}"}, {"entry": "fixmatch"}])
    trials = expand(spec)
    todo = [runs.Planned(trial, f"run{i}", False) for i, trial in enumerate(trials)]
    assert [[item.trial.line for item in stage] for stage in stages(todo)] == [
        [0, 0, 3, 3], [1, 1], [2, 2]]
    # a trial whose referred trial FINISHED before this command runs in the first stage
    assert [[item.trial.line for item in stage] for stage in stages(todo[2:4])] == [[1, 1]]


def test_a_trial_whose_referred_run_did_not_finish_fails_without_running():
    trials = expand(_spec(line=[SEARCH, {"entry": "train", "params": "policy=aws:{search}"}]))
    search, first, _ = trials
    client = _Client(checkpoints=set())
    client.set_tag = lambda run_id, key, value: client.created.append((run_id, key, value))
    item = runs.Planned(first, "train0", False)
    assert with_run_ids(client, item, {search.key: _run("s" * 32, "FINISHED")}, trials) == (
        f"policy=aws:{'s' * 32};seed=0")
    assert client.terminated == {}
    assert with_run_ids(client, item, {search.key: _run("s" * 32, "FAILED")}, trials) is None
    assert client.terminated == {"train0": "FAILED"}
    (run_id, tag, note), = client.created
    assert run_id == "train0" and tag == "mlflow.note.content"
    assert note == (f"not run: it takes the run id of line 'search' (aws_search seed=0; run "
                    f"{'s' * 32}), which ended FAILED. Rerun the sweep once that trial finishes.")
