"""The CIFAR-10, 4000 labels, WRN-28-2 preset starts and runs a few steps on a fake CIFAR-10."""

import numpy as np
import pytest

from tests.fake_data import write_cifar10

from .helpers import all_runs, run_script

pytestmark = pytest.mark.slow


def test_paper_preset_runs_a_few_steps_on_cifar_files(tracking, tmp_path):
    write_cifar10(tmp_path / "cifar10", np.random.default_rng(0), per_batch=1000, test_count=64)
    run_script(tracking, "code/main_uda.py", "CIFAR10", "wideresnet", "--params",
               f"preset=uda_cifar10_wrn28_2_paper;data_path={tmp_path}/cifar10;num_epochs=1;"
               "epoch_length=2;num_validation_samples=100;log_every=1;num_workers=0")
    (run,) = all_runs()
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["preset"], params["num_labelled_samples"], params["unlabelled_batch_size"],
            params["num_warmup_steps"], params["network"]) == (
        "uda_cifar10_wrn28_2_paper", "4000", "320", "20000", "wideresnet")
    assert "train/consistency_loss" in run.data.metrics
    assert "test/accuracy" in run.data.metrics
