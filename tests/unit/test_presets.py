"""Every ready configuration in experiments/presets parses against its entry's config."""

import pytest

import aws_search
import fixmatch
import main_uda
import main_uda2
import realmix
import train
from augssl.config import parse_params
from augssl.engine.entry import PRESETS_DIR

CONFIGS = {"uda2_": main_uda2.Uda2Config, "uda_": main_uda.UdaConfig,
           "realmix_": realmix.RealmixConfig, "train_": train.TrainConfig,
           "aws_search_": aws_search.AwsSearchConfig, "fixmatch_": fixmatch.FixmatchConfig}
PRESETS = sorted(PRESETS_DIR.glob("*.params"))


def _config_for(name: str):
    return next(cls for prefix, cls in CONFIGS.items() if name.startswith(prefix))


def test_there_are_presets():
    assert len(PRESETS) >= 5


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_parses_for_its_entry(path):
    config = parse_params(f"preset={path.stem}", _config_for(path.stem), presets_dir=PRESETS_DIR,
                          dataset="CIFAR10", network="wideresnet")
    assert config.preset == path.stem


def test_the_mismatch_presets_hold_the_papers_class_sets():
    mismatch = {}
    for percent in (0, 25, 50, 75, 100):
        config = parse_params(f"preset=realmix_cifar6_mismatch_{percent}", realmix.RealmixConfig,
                              presets_dir=PRESETS_DIR, dataset="CIFAR10", network="wideresnet")
        assert config.labelled_classes == (2, 3, 4, 5, 6, 7)
        outside = set(config.unlabelled_classes) - set(config.labelled_classes)
        mismatch[percent] = len(outside) / len(config.unlabelled_classes)
    assert mismatch == {0: 0.0, 25: 0.25, 50: 0.5, 75: 0.75, 100: 1.0}


def test_the_paper_preset_holds_the_paper_configuration():
    config = parse_params("preset=uda_cifar10_wrn28_2_paper", main_uda.UdaConfig,
                          presets_dir=PRESETS_DIR, dataset="CIFAR10", network="wideresnet")
    assert (config.num_labelled_samples, config.batch_size, config.unlabelled_batch_size,
            config.learning_rate, config.num_warmup_steps, config.with_TSA) == (
        4000, 64, 320, 0.03, 20000, True)


def test_the_later_paper_preset_holds_the_official_image_codes_configuration():
    """google-research/uda, image/: run_cifar10_gpu.sh (sharpening 0.4, confidence 0.8, unsup_ratio
    7, 500k steps) on main.py's defaults (no TSA, lr 0.03 cos(7/8 pi/2 t), EMA 0.9999)."""
    config = parse_params("preset=uda_cifar10_wrn28_2_paper_v2", main_uda.UdaConfig,
                          presets_dir=PRESETS_DIR, dataset="CIFAR10", network="wideresnet")
    assert config.num_epochs * config.epoch_length == 500_000
    assert (config.num_labelled_samples, config.batch_size, config.unlabelled_batch_size,
            config.learning_rate, config.weight_decay, config.lr_schedule,
            config.num_warmup_steps, config.ema_decay, config.with_TSA, config.strong_policy,
            config.consistency_temperature, config.confidence_threshold) == (
        4000, 64, 448, 0.03, 5e-4, "cosine_7_16", 0, 0.9999, False, "randaugment", 0.4, 0.8)


def test_the_fixmatch_paper_preset_holds_the_papers_cifar10_configuration():
    config = parse_params("preset=fixmatch_cifar10_wrn28_2_paper", fixmatch.FixmatchConfig,
                          presets_dir=PRESETS_DIR, dataset="CIFAR10", network="wideresnet")
    assert config.num_epochs * config.epoch_length == 2**20
    assert (config.num_labelled_samples, config.batch_size, config.mu, config.learning_rate,
            config.weight_decay, config.lr_schedule, config.ema_decay, config.threshold,
            config.lambda_u, config.T, config.strong_policy, config.cutout_size) == (
        4000, 64, 7, 0.03, 5e-4, "cosine_7_16", 0.999, 0.95, 1.0, 1.0, "randaugment", 16)


def test_the_realmix_paper_preset_ramps_w_match_over_the_papers_1024_of_65536_kimg():
    config = parse_params("preset=realmix_paper_schedule", realmix.RealmixConfig,
                          presets_dir=PRESETS_DIR, dataset="CIFAR10", network="wideresnet")
    steps = config.num_epochs * config.epoch_length
    assert steps * config.batch_size == 65536 << 10  # the original's train_kimg = 1 << 16
    assert config.w_match_rampup * steps * config.batch_size == 1024 << 10  # warmup_kimg = 1024
    assert config.w_match == 75 and config.w_match_rampup == 1 / 64


@pytest.mark.parametrize("path", sorted(PRESETS_DIR.glob("train_aws_*.params")),
                         ids=lambda p: p.stem)
def test_final_training_presets_take_a_learned_policy_and_name_a_known_network(path):
    from augssl.models import MODEL_NAMES

    config = parse_params(f"preset={path.stem};policy=aws:policy.json", train.TrainConfig,
                          presets_dir=PRESETS_DIR, dataset="CIFAR10", network="wideresnet")
    assert config.policy == "aws:policy.json" and config.num_labelled_samples == -1
    network = path.read_text().split("-P network=")[1].split()[0]
    assert network in MODEL_NAMES
