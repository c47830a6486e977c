import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from augssl.config import ConfigError, parse_params
from augssl.data.loaders import BatchPreparer, DeviceBatches
from augssl.data.sources import load_dataset
from augssl.engine import checkpoint as ckpt
from augssl.engine import session as session_module
from augssl.engine.config import TrainingConfig
from augssl.engine.ema import ParameterEMA
from augssl.engine.metrics import confusion_matrix, summarise
from augssl.engine.optim import lr_factor
from augssl.engine.session import Session, reading_once, source_dataset
from tests.fake_data import write_cifar10


def test_metrics_from_confusion_matrix():
    targets = torch.tensor([0, 0, 1, 1, 2, 2])
    predictions = torch.tensor([0, 1, 1, 1, 0, 2])
    matrix = confusion_matrix(predictions, targets, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    summary = summarise(matrix)
    assert summary["accuracy"] == pytest.approx(4 / 6)
    assert summary["per_class_accuracy"] == pytest.approx([0.5, 1.0, 0.5])
    precision = [1 / 2, 2 / 3, 1.0]
    recall = [0.5, 1.0, 0.5]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    assert summary["precision_macro"] == pytest.approx(np.mean(precision))
    assert summary["recall_macro"] == pytest.approx(np.mean(recall))
    assert summary["f1_macro"] == pytest.approx(np.mean(f1))


def test_a_class_never_predicted_counts_zero_precision_not_dropped():
    matrix = confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 1]), 2)
    assert summarise(matrix)["precision_macro"] == pytest.approx((0.5 + 0.0) / 2)


def test_cosine_schedule_with_warmup():
    assert lr_factor(0, 100, 10, "cosine", 0.004) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine", 0.004) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, "cosine", 0.004) == pytest.approx(1.0)
    middle = lr_factor(55, 100, 10, "cosine", 0.004)
    assert middle == pytest.approx(0.004 + 0.996 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(100, 100, 10, "cosine", 0.004) == pytest.approx(0.004)
    assert lr_factor(50, 100, 0, "constant", 0.004) == 1.0


def test_ema_moves_towards_the_model_by_one_minus_its_decay_once_warmed_up():
    model = torch.nn.Linear(2, 1)
    ema = ParameterEMA(model, decay=0.9)
    for _ in range(200):  # past the warm-up: (1 + n) / (10 + n) > 0.9 from n = 80
        ema.update(model)
    before = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.model.weight, before + 0.1)
    assert not ema.model.weight.requires_grad


def test_a_short_run_ema_forgets_the_initial_weights():
    # decay 0.999 over 600 steps without warm-up keeps 0.999**600 = 55% of the random
    # initialisation; with the warm-up decay min(decay, (1 + n) / (10 + n)) almost none is left
    model = torch.nn.Linear(2, 1, bias=False)
    ema = ParameterEMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.zero_()
        ema.model.weight.fill_(1.0)  # stands for the initial weights
        for step in range(600):
            ema.update(model)
    assert ema.model.weight.abs().max() < 0.05
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.999


def test_ema_state_round_trips_with_its_update_count():
    model = torch.nn.Linear(2, 1)
    ema = ParameterEMA(model, decay=0.99)
    for _ in range(7):
        ema.update(model)
    other = ParameterEMA(torch.nn.Linear(2, 1), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 7
    assert torch.equal(other.model.weight, ema.model.weight)


def test_within_a_reading_once_block_each_data_set_is_read_once(monkeypatch):
    reads = []
    monkeypatch.setattr(session_module, "load_dataset",
                        lambda name, path: reads.append((name, path)) or object())
    fashion, cifar = (SimpleNamespace(dataset=name, data_path="") for name in ("F", "C"))
    with reading_once() as read:
        first = source_dataset(fashion)
        with reading_once():
            assert source_dataset(fashion) is first
            source_dataset(cifar)
        assert source_dataset(fashion) is first
        assert list(read) == [("F", None)]
    assert source_dataset(fashion) is not first  # outside a block: read each time
    assert reads == [("F", None), ("C", None), ("F", None)]


def test_checkpoints_are_atomic_rotated_and_loaded_weights_only(tmp_path):
    model = torch.nn.Linear(2, 1)
    for iteration in (10, 20, 30):
        ckpt.save_checkpoint(tmp_path, iteration, {"model": model})
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint_20.pt",
                                                                 "checkpoint_30.pt"]
    assert not list(tmp_path.glob("*.partial"))
    state = ckpt.load_checkpoint(tmp_path / "checkpoint_30.pt")
    other = torch.nn.Linear(2, 1)
    ckpt.restore(state, {"model": other})
    assert torch.equal(other.weight, model.weight)
    with pytest.raises(ConfigError, match="lacks optimizer"):
        ckpt.restore(state, {"model": other, "optimizer": torch.optim.SGD(other.parameters(), 1)})


def test_a_corrupt_checkpoint_is_refused_clearly(tmp_path):
    bad = tmp_path / "checkpoint_5.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        ckpt.load_checkpoint(bad)
    assert ckpt.resolve_resume(str(bad)) == ckpt.ResumePoint(path=bad)
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        ckpt.resolve_resume(str(tmp_path / "missing.pt"))


def _batches(world_size=1, rank=0, shuffle=True, n=10, batch=3):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1)
    return DeviceBatches(images, torch.arange(n), np.arange(n), batch, shuffle=shuffle,
                         drop_last=shuffle, seed=1, rank=rank, world_size=world_size)


def test_device_batches_shuffle_per_epoch_and_resume_exactly():
    loader = _batches()
    epoch0 = [b[2].tolist() for b in loader]
    epoch1 = [b[2].tolist() for b in loader]
    assert len(epoch0) == len(loader) == 3 and epoch0 != epoch1
    resumed = _batches()
    resumed.resume_at(1, 2)
    assert [b[2].tolist() for b in resumed] == epoch1[2:]


def test_device_batches_shard_training_equally_and_evaluation_completely():
    shares = [[i for b in _batches(2, r) for i in b[2].tolist()] for r in range(2)]
    assert not set(shares[0]) & set(shares[1])
    assert len(_batches(2, 0)) == len(_batches(2, 1))
    evaluated = [i for r in range(3) for b in _batches(3, r, shuffle=False) for i in b[2].tolist()]
    assert sorted(evaluated) == list(range(10))
    assert [len(_batches(3, r, shuffle=False)) for r in range(3)] == [2, 1, 1]


def test_batch_preparer_normalises_and_seeds_augmentation_by_step():
    preparer = BatchPreparer((0.5,), (0.25,), torch.device("cpu"))
    images = torch.full((2, 1, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(preparer(images, 1), torch.full((2, 1, 2, 2), 2.0))
    draws = [torch.rand(3, generator=preparer.generator_for(s)) for s in (5, 5, 6)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_precision_modes():
    from augssl.engine.amp import Precision

    cpu = torch.device("cpu")
    assert Precision("auto", cpu).dtype == torch.bfloat16
    assert Precision("off", cpu).dtype is None
    with pytest.raises(ConfigError, match="amp=fp16 needs a CUDA device"):
        Precision("fp16", cpu)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = Precision("bf16", cpu)
    with precision.autocast():
        output = model(torch.randn(3, 4))
    assert output.dtype == torch.bfloat16
    before = model.weight.detach().clone()
    precision.backward_and_step(output.float().pow(2).mean(), optimizer)
    assert not torch.equal(before, model.weight)


def _session(bundle, params: str = "") -> Session:
    config = parse_params(params, TrainingConfig, dataset="CIFAR10", network="smallcnn")
    return Session("train", config, torch.device("cpu"), 0, 1, bundle, None, None, None)


def test_the_sessions_augmentation_fills_with_the_data_sets_mean(tmp_path):
    write_cifar10(tmp_path, np.random.default_rng(0))
    cifar10 = load_dataset("CIFAR10", tmp_path, download=False)
    assert _session(cifar10).augment_spec().fill == (125, 123, 114)  # mean (0.4914, 0.4822, 0.4465)
    fashion = SimpleNamespace(image_size=28, channels=1, flip=True, mean=(0.2860,))
    assert _session(fashion).augment_spec().fill == (73,)


@pytest.mark.parametrize("size,default", ((28, 14), (32, 16), (96, 48)))
def test_cutout_defaults_to_half_the_image_side_unless_given(size, default):
    bundle = SimpleNamespace(image_size=size, channels=3, flip=True, mean=(0.5, 0.5, 0.5))
    assert _session(bundle).augment_spec().cutout_size == default
    assert _session(bundle, "cutout_size=8").augment_spec().cutout_size == 8
    assert _session(bundle, "cutout_size=0").augment_spec().cutout_size == 0


def test_available_cores_falls_back_to_the_machine_count_where_the_os_has_no_affinity(
        monkeypatch):
    from augssl.engine import session

    monkeypatch.setattr(session.os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    assert session.available_cores() == 2
    monkeypatch.delattr(session.os, "sched_getaffinity")
    monkeypatch.setattr(session.os, "cpu_count", lambda: 6)
    assert session.available_cores() == 6


@pytest.mark.parametrize("channels", (1, 3))
def test_the_sessions_model_trains_channels_last_with_the_contiguous_models_outputs(channels):
    bundle = SimpleNamespace(image_size=28, channels=channels, flip=True, mean=(0.5,) * channels,
                             classes=tuple(range(10)))
    torch.manual_seed(0)
    fast = _session(bundle).create_model()
    torch.manual_seed(0)
    plain = _session(bundle, "channels_last=false").create_model()
    def last_conv_weight(model):  # the first one's single input channel is either order
        return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight

    assert last_conv_weight(fast).is_contiguous(memory_format=torch.channels_last)
    assert not last_conv_weight(plain).is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(8, channels, 28, 28)
    torch.testing.assert_close(fast(images), plain(images), rtol=1e-4, atol=1e-5)
    # the features a linear layer reads are in the same order in both
    torch.testing.assert_close(fast.forward_features(images), plain.forward_features(images),
                               rtol=1e-4, atol=1e-5)
