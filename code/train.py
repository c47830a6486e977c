"""Supervised training with a chosen augmentation policy: the baseline of every algorithm.

    python code/train.py FashionMNIST smallcnn --params "num_epochs=3;policy=autoaugment"
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from ignite.engine import Engine

from augssl.engine.checkpoint import resolve_resume
from augssl.engine.config import TrainingConfig
from augssl.engine.ema import ParameterEMA
from augssl.engine.entry import launch
from augssl.engine.figures import save_augmented_grid, save_confusion_matrix
from augssl.engine.model_export import export_final_model
from augssl.engine.optim import build_optimizer, build_scheduler
from augssl.engine.session import open_session, run_tracked
from augssl.engine.trainer import TrainingLoop
from augssl.models import build_model

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
    import ignite.distributed as idist

    session = open_session(ENTRY, config)
    checkpoint_path, continue_run_id = (resolve_resume(config.resume) if config.resume
                                        else (None, None))
    model = idist.auto_model(build_model(config.network, num_classes=session.num_classes,
                                         in_channels=session.bundle.channels).to(session.device))
    optimizer = idist.auto_optim(build_optimizer(config, model.parameters()))
    batches, augment = session.batches(session.bundle.train, session.splits.labelled,
                                       config.batch_size, train=True, policy=config.policy)
    epoch_length = config.epoch_length or len(batches)
    scheduler = build_scheduler(config, optimizer, config.num_epochs * epoch_length)
    prepare_train = session.preparer(augment)
    precision = session.precision

    trainer = Engine(make_step(model, optimizer, prepare_train, precision, config.label_smoothing))
    loop = TrainingLoop(
        config=config, trainer=trainer, model=model, optimizer=optimizer, scheduler=scheduler,
        precision=precision, tracker=session.tracker, class_names=session.bundle.classes,
        prepare_eval=session.preparer(), eval_splits=session.eval_splits(max(config.batch_size, 256)),
        ema=ParameterEMA(model, config.ema_decay) if config.ema_decay > 0 else None,
        on_resume=lambda state: _resume_batches(batches, state, epoch_length))
    loop.attach()

    def body() -> None:
        if checkpoint_path is not None:
            loop.resume_from(checkpoint_path)
        wall_time = loop.run(batches, config.num_epochs, epoch_length)
        _finish(session, loop, batches, augment, wall_time)

    run_tracked(session, continue_run_id, body)


def _resume_batches(batches, state, epoch_length: int) -> None:
    if hasattr(batches, "resume_at"):
        batches.resume_at(state.epoch, state.iteration % epoch_length)


def _finish(session, loop: TrainingLoop, batches, augment, wall_time: float) -> None:
    tracker = session.tracker
    tracker.log_metrics({"wall_time_s": wall_time}, loop.trainer.state.iteration)
    test_metrics, matrix = loop.last_results["test"]
    if not tracker.enabled:
        return
    save_confusion_matrix(matrix, session.bundle.classes, tracker.path("confusion_matrix.png"),
                          f"test accuracy {test_metrics['test/accuracy']:.4f}")
    sample_images = next(iter(batches))[0][:32].to(session.device)
    if augment is not None:
        sample_images = augment(sample_images, session.preparer().generator_for(0))
    save_augmented_grid(sample_images, tracker.path("augmented_samples.png"))
    export_final_model(loop.eval_model(), tracker, session.bundle, session.config)
    summary = {"test_accuracy": test_metrics["test/accuracy"],
               "best_validation_accuracy": loop.best_accuracy, "wall_time_s": wall_time,
               "run_id": tracker.run_id}
    tracker.path("summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{ENTRY}: test accuracy {test_metrics['test/accuracy']:.4f} "
          f"(run {tracker.run_id}, {wall_time:.1f} s)")


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    launch(ENTRY, TrainConfig, training)
