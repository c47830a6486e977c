"""The common ending of every training script: wire the loop, resume if asked, train, write the
run's outputs, and end the MLflow run truthfully."""

from __future__ import annotations

from typing import Callable

import torch
from ignite.engine import Engine

from augssl.data.streams import BatchStreams
from augssl.engine.checkpoint import resolve_resume
from augssl.engine.ema import ParameterEMA
from augssl.engine.model_export import model_metadata
from augssl.engine.outputs import write_final_outputs
from augssl.engine.session import Session, run_tracked
from augssl.engine.trainer import TrainingLoop


def fit(session: Session, trainer: Engine, *, model: torch.nn.Module,
        optimizer: torch.optim.Optimizer, scheduler, data, epoch_length: int,
        examples: Callable[[], torch.Tensor], streams: dict | None = None,
        extra_state: dict | None = None,
        final_metrics: Callable[[TrainingLoop], dict[str, float]] | None = None) -> TrainingLoop:
    """Train ``trainer`` over ``data`` for the config's epochs.

    What checkpoints save: the model, optimiser and schedule, the position of ``data`` and of
    ``streams`` (name -> the batches the step reads itself, one per iteration), and
    ``extra_state`` (further objects with state_dict/load_state_dict). ``examples()`` returns
    augmented training images for the run's figure; ``final_metrics(loop)`` gives metrics to log
    once at the end (they also go in summary.json).
    """
    config = session.config
    resume_point = resolve_resume(config.resume) if config.resume else None
    loop = TrainingLoop(
        config=config, trainer=trainer, model=model, optimizer=optimizer, scheduler=scheduler,
        precision=session.precision, tracker=session.tracker,
        class_names=session.bundle.classes, prepare_eval=session.preparer(),
        model_metadata=model_metadata(session.bundle, config),
        eval_splits=session.eval_splits(),
        ema=ParameterEMA(model, config.ema_decay) if config.ema_decay > 0 else None,
        extra_state={"streams": BatchStreams({"data": data, **(streams or {})}),
                     **(extra_state or {})})
    loop.attach()

    def body() -> None:
        if resume_point is not None:
            loop.resume_from(resume_point)
        wall_time = loop.run(data, config.num_epochs, epoch_length)
        extra = final_metrics(loop) if final_metrics is not None else {}
        session.tracker.log_metrics(extra, loop.trainer.state.iteration)
        write_final_outputs(session, loop, examples(), wall_time, extra_summary=extra)

    run_tracked(session, resume_point.run_id if resume_point else None, body)
    return loop
