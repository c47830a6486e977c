"""Batch streams carry their position in checkpoints, so a resumed run reads on from the very
batch an uninterrupted one would read next."""

import itertools

import numpy as np
import pytest
import torch

from augssl.config import ConfigError
from augssl.data.loaders import DeviceBatches, cycle
from augssl.data.streams import BatchStreams
from augssl.engine import checkpoint as ckpt


def _batches(n=10, batch=3, stream=0):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1)
    return DeviceBatches(images, torch.arange(n), np.arange(n), batch, shuffle=True,
                         drop_last=True, seed=1, stream=stream)


def _indices(batches, count):
    return [b[2].tolist() for b in itertools.islice(batches, count)]


@pytest.mark.parametrize("read", [0, 2, 3, 7])  # none, mid-epoch, an epoch's end, a later epoch
def test_a_stream_loaded_from_another_s_state_goes_on_with_its_next_batch(read):
    source = _batches()
    original = cycle(source)
    _indices(original, read)
    resumed = _batches()
    resumed.load_state_dict(source.state_dict())
    assert _indices(cycle(resumed), 5) == _indices(original, 5)


def test_a_checkpoint_keeps_each_named_stream_s_own_position():
    labelled, unlabelled = _batches(), _batches(n=12, batch=4, stream=1)
    streams = BatchStreams({"data": labelled, "unlabelled": unlabelled})
    reading = cycle(labelled), cycle(unlabelled)
    _indices(reading[0], 4)
    _indices(reading[1], 1)
    saved = streams.state_dict()
    expected = _indices(reading[0], 3), _indices(reading[1], 3)

    fresh = _batches(), _batches(n=12, batch=4, stream=1)
    BatchStreams({"data": fresh[0], "unlabelled": fresh[1]}).load_state_dict(saved)
    assert (_indices(cycle(fresh[0]), 3), _indices(cycle(fresh[1]), 3)) == expected


def test_loader_streams_that_cannot_be_positioned_are_left_out():
    loader = torch.utils.data.DataLoader(list(range(6)), batch_size=2)
    streams = BatchStreams({"data": _batches(), "workers": loader})
    assert set(streams.state_dict()) == {"data"}
    streams.load_state_dict(streams.state_dict())


def _older_checkpoint(iteration: int, hyper_steps: int) -> dict:
    """A checkpoint of a run from before the streams had a state of their own."""
    return {"trainer": {"iteration": iteration}, "hyper_optimizer": {"steps": hyper_steps},
            "rng": ckpt.rng_state()}


def test_an_older_checkpoint_positions_each_stream_after_one_batch_per_counted_step():
    data, hyper = _batches(), _batches(stream=5)
    objects = {"streams": BatchStreams({"data": data}),
               "hyper_streams": BatchStreams({"train": hyper},
                                             counted_by=("hyper_optimizer", "steps"))}
    ckpt.restore(_older_checkpoint(iteration=7, hyper_steps=2), objects)

    uninterrupted, uninterrupted_hyper = cycle(_batches()), cycle(_batches(stream=5))
    _indices(uninterrupted, 7)
    _indices(uninterrupted_hyper, 2)
    assert _indices(cycle(data), 4) == _indices(uninterrupted, 4)
    assert _indices(cycle(hyper), 4) == _indices(uninterrupted_hyper, 4)


def test_a_checkpoint_lacking_what_an_older_one_would_have_is_still_refused():
    objects = {"streams": BatchStreams({"data": _batches()})}
    with pytest.raises(ConfigError, match="lacks streams"):
        ckpt.restore({"rng": ckpt.rng_state()}, objects)
