"""Every ready configuration in experiments/presets parses against its entry's config."""

import pytest

import main_uda
import main_uda2
import train
from augssl.config import parse_params
from augssl.engine.entry import PRESETS_DIR

CONFIGS = {"uda2_": main_uda2.Uda2Config, "uda_": main_uda.UdaConfig, "train_": train.TrainConfig}
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


def test_the_paper_preset_holds_the_paper_configuration():
    config = parse_params("preset=uda_cifar10_wrn28_2_paper", main_uda.UdaConfig,
                          presets_dir=PRESETS_DIR, dataset="CIFAR10", network="wideresnet")
    assert (config.num_labelled_samples, config.batch_size, config.unlabelled_batch_size,
            config.learning_rate, config.num_warmup_steps, config.with_TSA) == (
        4000, 64, 320, 0.03, 20000, True)
