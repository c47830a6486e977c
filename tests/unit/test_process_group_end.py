"""A training process of a group frees what its training left in reference cycles before the
launcher destroys the group, so that nothing of the group is left for the interpreter's exit."""

import gc
import weakref

import pytest

from augssl.engine.entry import train_and_release


class Model:
    """Stands for the DDP model, which the trainer's handlers keep in reference cycles."""


def cyclic_training(left: list):
    def training(local_rank, config):
        model = Model()
        loop = {"model": model}
        loop["self"] = loop
        left.append(weakref.ref(model))
    return training


@pytest.fixture
def no_automatic_collection():
    gc.collect()
    gc.disable()  # only the collection under test may free the cycle
    yield
    gc.enable()


@pytest.mark.usefixtures("no_automatic_collection")
def test_the_training_cycles_are_freed_when_it_returns():
    left = []
    train_and_release(cyclic_training(left), 0, None)
    (model,) = left
    assert model() is None


@pytest.mark.usefixtures("no_automatic_collection")
def test_without_the_release_the_cycle_outlives_the_training():
    # the premise: such a cycle is freed only by a collection
    left = []
    cyclic_training(left)(0, None)
    (model,) = left
    assert model() is not None
