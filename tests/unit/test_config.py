from dataclasses import dataclass

import pytest

from augssl.config import ConfigError, as_flat_dict, parse_params, spec, split_params
from augssl.engine.config import TrainingConfig


@dataclass(frozen=True)
class Example:
    learning_rate: float = spec(0.03, "lr", min=0.0)
    batch_size: int = spec(64, "batch", min=1)
    with_TSA: bool = spec(True, "tsa", aliases=("tsa",))
    data_path: str = spec("", "where")
    milestones: tuple[int, ...] = spec((), "epochs")
    criterion: str = spec("KL", "loss", choices=("KL", "MSE"))
    limit: int | None = spec(None, "optional")


def test_values_are_converted_by_the_declared_types():
    config = parse_params("learning_rate=0.1;batch_size=512;with_TSA=false;milestones=10,20;"
                          "limit=7", Example)
    assert config.learning_rate == 0.1 and isinstance(config.learning_rate, float)
    assert config.batch_size == 512 and isinstance(config.batch_size, int)
    assert config.with_TSA is False
    assert config.milestones == (10, 20)
    assert config.limit == 7


def test_none_and_scientific_integers():
    assert parse_params("limit=None", Example).limit is None
    assert parse_params("batch_size=1e3", Example).batch_size == 1000


def test_empty_pieces_trailing_semicolon_and_whitespace_are_accepted():
    config = parse_params(" ; learning_rate = 0.5 ;; batch_size=8;", Example)
    assert (config.learning_rate, config.batch_size) == (0.5, 8)
    assert parse_params("", Example) == Example()


def test_values_with_slashes_and_equals_are_kept_whole():
    config = parse_params("data_path=../input/cifar10/a=b", Example)
    assert config.data_path == "../input/cifar10/a=b"
    assert split_params("k=v=w") == [("k", "v=w")]


def test_aliases_map_to_the_field():
    assert parse_params("tsa=0", Example).with_TSA is False


def test_unknown_key_names_the_closest_valid_key():
    with pytest.raises(ConfigError, match=r"unknown parameter 'learning_rte'.*'learning_rate'"):
        parse_params("learning_rte=0.1", Example)


@pytest.mark.parametrize("text, expected", [
    ("batch_size=big", r"batch_size='big' is not valid: expected int"),
    ("batch_size=2.5", r"batch_size='2.5' is not valid: expected int"),
    ("with_TSA=maybe", r"with_TSA='maybe' is not valid: expected bool"),
    ("batch_size=0", r"batch_size=0 is out of range: expected a value >= 1"),
    ("learning_rate=-1", r"learning_rate=-1.0 is out of range"),
    ("criterion=KLD", r"criterion='KLD' is not allowed: expected one of KL, MSE.*'KL'"),
    ("batch_size", r"not of the form key=value"),
    ("=3", r"not of the form key=value"),
    ("batch_size=1;batch_size=2",
     r"parameter 'batch_size' is given twice \(batch_size=1 and batch_size=2\): give it once"),
    ("with_TSA=1;tsa=0", r"parameter 'with_TSA' is given twice \(with_TSA=1 and tsa=0\)"),
])
def test_bad_values_are_refused_with_the_key_the_value_and_what_is_expected(text, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_params(text, Example)


def test_values_are_never_evaluated():
    with pytest.raises(ConfigError):
        parse_params("batch_size=__import__('os').getpid()", Example)
    assert parse_params("data_path=__import__('os')", Example).data_path == "__import__('os')"


def test_training_config_cross_checks():
    with pytest.raises(ConfigError, match="needs a distributed backend"):
        parse_params("nproc_per_node=2", TrainingConfig)
    with pytest.raises(ConfigError, match="backend='mpi'"):
        parse_params("backend=mpi", TrainingConfig)
    with pytest.raises(ConfigError, match="num_labelled_samples=0"):
        parse_params("num_labelled_samples=0", TrainingConfig)


def test_fixed_values_cannot_also_be_given_in_params():
    with pytest.raises(ConfigError, match="'dataset' is set both"):
        parse_params("dataset=CIFAR10", TrainingConfig, dataset="MNIST")
    assert parse_params("", TrainingConfig, dataset="MNIST").dataset == "MNIST"


def test_flat_dict_is_plain():
    flat = as_flat_dict(parse_params("milestones=1,2", Example))
    assert flat["milestones"] == "1,2"


@dataclass(frozen=True)
class WithPreset(Example):
    preset: str = spec("", "preset")


def test_presets_give_defaults_that_params_override(tmp_path):
    (tmp_path / "paper.params").write_text(
        "# the paper\nlearning_rate=0.5\nbatch_size=7  # per GPU\nwith_TSA=false\n")
    config = parse_params("preset=paper;batch_size=9;tsa=true", WithPreset, presets_dir=tmp_path)
    assert (config.learning_rate, config.batch_size, config.with_TSA) == (0.5, 9, True)
    assert config.preset == "paper"
    with pytest.raises(ConfigError, match="preset='papr'.*Did you mean 'paper'"):
        parse_params("preset=papr", WithPreset, presets_dir=tmp_path)
