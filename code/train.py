"""Supervised training with a chosen augmentation policy: the baseline of every algorithm.

    python code/train.py FashionMNIST smallcnn --params "num_epochs=3;policy=autoaugment"
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

from dataclasses import dataclass

import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.engine import Engine

from augssl.engine.config import TrainingConfig
from augssl.engine.entry import launch
from augssl.engine.fit import fit
from augssl.engine.optim import build_optimizer, build_scheduler
from augssl.engine.outputs import augmented_examples
from augssl.engine.session import open_session

ENTRY = "train"


@dataclass(frozen=True)
class TrainConfig(TrainingConfig):
    """Supervised training needs nothing beyond the shared options."""


def make_step(model, optimizer, prepare, precision, label_smoothing: float):
    """The supervised step: augment on the device, cross-entropy, one optimiser step."""

    def step(engine: Engine, batch) -> dict:
        model.train()
        images, targets, _ = batch
        inputs = prepare(images, engine.state.iteration)
        targets = targets.to(inputs.device, non_blocking=True)
        with precision.autocast():
            loss = F.cross_entropy(model(inputs), targets, label_smoothing=label_smoothing)
        precision.backward_and_step(loss, optimizer)
        return {"loss": loss.detach()}

    return step


def training(local_rank: int, config: TrainConfig) -> None:
    session = open_session(ENTRY, config)
    model = session.create_model()
    optimizer = idist.auto_optim(build_optimizer(config, model.parameters()))
    batches, (augment,) = session.batches(session.bundle.train, session.splits.labelled,
                                          config.batch_size, train=True,
                                          policies=(config.policy,))
    epoch_length = config.epoch_length or len(batches)
    scheduler = build_scheduler(config, optimizer, config.num_epochs * epoch_length)
    trainer = Engine(make_step(model, optimizer, session.preparer(augment), session.precision,
                               config.label_smoothing))
    fit(session, trainer, model=model, optimizer=optimizer, scheduler=scheduler,
        data=batches, epoch_length=epoch_length,
        examples=lambda: augmented_examples(batches, augment,
                                            session.preparer().generator_for(0), session.device))


def main(argv: list[str] | None = None) -> None:
    launch(ENTRY, TrainConfig, training, argv)


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main()
