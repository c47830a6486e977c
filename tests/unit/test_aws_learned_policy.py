"""`policy=aws:<run id or file>`: parsing, resolution and the augmentation it builds."""

import mlflow
import pytest
import torch

from augssl.augment import AugmentSpec
from augssl.config import ConfigError, parse_params
from augssl.engine.config import TrainingConfig
from augssl.search.aws import OPERATION_NAMES, PairPolicy, apply_pairs, save_policy
from augssl.search.aws.learned import (
    LearnedPolicyAugment,
    check_learned_policy,
    learned_policy,
    resolve_learned_policy,
)
from augssl.search.aws.training_step import PairAugment

FASHION_MNIST_FILL = (73,)  # the data set's mean pixel, 0.2860, in uint8


def _policy_on(first: str, second: str) -> PairPolicy:
    """A policy that (almost surely) always draws the pair (first, second)."""
    policy = PairPolicy()
    with torch.no_grad():
        policy.first_logits[OPERATION_NAMES.index(first)] = 60.0
        policy.second_logits[:, OPERATION_NAMES.index(second)] = 60.0
    return policy


def _parse(params: str) -> TrainingConfig:
    return parse_params(params, TrainingConfig, dataset="FashionMNIST", network="smallcnn")


def test_the_policy_param_takes_names_and_learned_policies_and_explains_both():
    assert _parse("policy=aws:/some/policy.json").policy == "aws:/some/policy.json"
    assert _parse("policy=randaugment").policy == "randaugment"
    with pytest.raises(ConfigError, match=r"aws:<run id, policy.json or uniform>"):
        _parse("policy=aws")
    with pytest.raises(ConfigError, match="Did you mean 'cutout'"):
        _parse("policy=cutuot")
    with pytest.raises(ConfigError, match="augment_on=device"):
        _parse("policy=aws:/some/policy.json;augment_on=cpu")


def test_a_file_reference_resolves_to_the_file(tmp_path):
    path = save_policy(PairPolicy(), tmp_path / "learned.json")
    assert resolve_learned_policy(str(path)) == path


def test_a_run_reference_resolves_to_the_runs_policy_artifact(tmp_path, monkeypatch):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(save_policy(_policy_on("Invert", "Equalize"),
                                                tmp_path / "policy.json")))
        local = resolve_learned_policy(run.info.run_id)
        assert local.name == "policy.json" and local.read_text() == (
            tmp_path / "policy.json").read_text()
        with mlflow.start_run() as empty:
            pass
        with pytest.raises(FileNotFoundError, match="has no policy.json"):
            resolve_learned_policy(empty.info.run_id)
    finally:
        mlflow.set_tracking_uri(None)


def test_uniform_names_the_policy_a_search_starts_from_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file called "uniform" here
    check_learned_policy("uniform")
    torch.testing.assert_close(learned_policy("uniform").joint(), PairPolicy().joint())
    assert _parse("policy=aws:uniform").policy == "aws:uniform"


def test_a_reference_that_is_neither_file_nor_run_id_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an MLflow run id"):
        resolve_learned_policy(str(tmp_path / "missing.json"))


def test_the_augmentation_applies_the_learned_pair_after_the_weak_crop():
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    spec = AugmentSpec(image_size=28, channels=1, flip=False, pad=0, cutout_size=0,
                       fill=FASHION_MNIST_FILL)
    augment = LearnedPolicyAugment(_policy_on("Invert", "Posterize@9").transform(), spec)
    first = torch.full((16,), OPERATION_NAMES.index("Invert"))
    second = torch.full((16,), OPERATION_NAMES.index("Posterize@9"))
    expected = apply_pairs(images, first, second)
    torch.testing.assert_close(augment(images, torch.Generator().manual_seed(0)), expected)


def test_cutout_follows_the_pair_when_enabled():
    images = torch.full((8, 1, 28, 28), 200, dtype=torch.uint8)
    spec = AugmentSpec(image_size=28, channels=1, flip=False, pad=0, cutout_size=10,
                       fill=FASHION_MNIST_FILL)
    augment = LearnedPolicyAugment(_policy_on("Invert", "Invert").transform(), spec)
    out = augment(images, torch.Generator().manual_seed(1))
    # the double inversion gives the images back; Cutout then fills a square in each image
    assert ((out == 200).float().mean() < 1) and ((out == 200).float().mean() > 0.8)
    assert set(out.unique().tolist()) == {200, *FASHION_MNIST_FILL}


@pytest.mark.parametrize("cutout_size", (0, 10))
def test_learned_pairs_and_cutout_fill_with_the_data_sets_mean(cutout_size):
    black = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    spec = AugmentSpec(image_size=28, channels=1, flip=False, pad=0, cutout_size=cutout_size,
                       fill=FASHION_MNIST_FILL)
    learned = LearnedPolicyAugment(_policy_on("TranslateX@9", "Rotate@9").transform(), spec)
    out = learned(black, torch.Generator().manual_seed(2))
    assert set(out.unique().tolist()) == {0, *FASHION_MNIST_FILL}


@pytest.mark.parametrize("cutout_size", (0, 10))
def test_the_searchs_pairs_and_cutout_fill_with_the_data_sets_mean(cutout_size):
    black = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    spec = AugmentSpec(image_size=28, channels=1, flip=False, pad=0, cutout_size=cutout_size,
                       fill=FASHION_MNIST_FILL)
    augment = PairAugment(spec, multiplicity=2)
    batch = augment(black, torch.zeros(8, dtype=torch.long),
                    _policy_on("TranslateY@9", "ShearX@9").transform(),
                    torch.Generator().manual_seed(3))
    assert batch.images.shape[0] == 16
    assert set(batch.images.unique().tolist()) == {0, *FASHION_MNIST_FILL}
