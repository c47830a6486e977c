"""The pieces every training entry wires onto its ignite trainer.

An entry writes only its step function; ``TrainingLoop`` adds the learning-rate schedule, EMA,
the non-finite loss guard, batch-loss logging, evaluation with best-on-validation selection,
periodic checkpoints, resumption and the progress bar.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from ignite.engine import Engine, Events

from augssl.engine import checkpoint as ckpt
from augssl.engine.evaluation import create_evaluator, evaluate
from augssl.engine.model_export import BEST_MODEL_FILE, save_model_file


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainingLoop:
    config: object
    trainer: Engine
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    precision: object
    tracker: object
    class_names: list[str]
    prepare_eval: Callable
    model_metadata: dict = field(default_factory=dict)
    eval_splits: dict = field(default_factory=dict)
    ema: object = None
    extra_state: dict = field(default_factory=dict)
    best_accuracy: float = -1.0
    last_results: dict = field(default_factory=dict)
    accuracy_history: dict = field(default_factory=dict)  # split -> accuracies, in order
    last_checkpoint: str | None = None  # where the newest checkpoint is stored

    def state_dict(self) -> dict:
        return {"best_accuracy": self.best_accuracy, "accuracy_history": self.accuracy_history}

    def load_state_dict(self, state: dict) -> None:
        self.best_accuracy = state["best_accuracy"]
        self.accuracy_history = state["accuracy_history"]

    def eval_model(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.model

    def state_objects(self) -> dict:
        objects = {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler,
                   "scaler": self.precision.scaler, "trainer": self.trainer, "loop": self,
                   **self.extra_state}
        if self.ema is not None:
            objects["ema"] = self.ema
        return objects

    def attach(self) -> None:
        trainer, config = self.trainer, self.config
        self._nonfinite = torch.zeros((), dtype=torch.bool)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._after_step)
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=config.log_every),
                                  self._check_and_log)
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=config.checkpoint_every),
                                  self._checkpoint)
        trainer.add_event_handler(Events.EPOCH_COMPLETED(every=config.eval_every), self._evaluate)
        trainer.add_event_handler(Events.COMPLETED, self._on_completed)
        self._evaluated_at = -1
        self.evaluator = create_evaluator(self.eval_model, self.prepare_eval, self.precision,
                                          len(self.class_names))
        if self.tracker.enabled and sys.stderr.isatty():
            from ignite.handlers import ProgressBar

            ProgressBar(persist=False).attach(trainer, output_transform=lambda out: {
                "loss": float(out["loss"])})

    def _after_step(self, engine: Engine) -> None:
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        loss = engine.state.output["loss"]
        self._nonfinite = self._nonfinite.to(loss.device) | ~torch.isfinite(loss.detach())

    def _guard_finite(self, engine: Engine) -> None:
        # checked every log_every steps and before each checkpoint, so a bad step never reaches
        # a checkpoint while the fast path does not synchronise with the device every iteration
        if bool(self._nonfinite):
            where = (f"the last good checkpoint is {self.last_checkpoint}"
                     if self.last_checkpoint else "no checkpoint had been written yet")
            raise NonFiniteLossError(
                f"the training loss became NaN or infinite by iteration {engine.state.iteration} "
                f"(epoch {engine.state.epoch}); {where}. Lower learning_rate, turn amp off, or "
                "check the data; the run is marked FAILED.")

    def _check_and_log(self, engine: Engine) -> None:
        self._guard_finite(engine)
        metrics = {f"train/{name}": float(value) for name, value in engine.state.output.items()}
        metrics["train/lr"] = self.optimizer.param_groups[0]["lr"]
        self.tracker.log_metrics(metrics, engine.state.iteration)

    def _checkpoint(self, engine: Engine) -> None:
        self._guard_finite(engine)
        if self.tracker.enabled:
            self.last_checkpoint = self.tracker.save_checkpoint(engine.state.iteration,
                                                                self.state_objects())

    def _evaluate(self, engine: Engine) -> None:
        self._guard_finite(engine)
        step = engine.state.iteration
        if step == self._evaluated_at:
            return
        self._evaluated_at = step
        for split, batches in self.eval_splits.items():
            metrics, matrix = evaluate(self.evaluator, batches, split, self.class_names)
            self.last_results[split] = (metrics, matrix)
            self.accuracy_history.setdefault(split, []).append(metrics[f"{split}/accuracy"])
            self.tracker.log_metrics(metrics, step)
            if split == "validation" and metrics["validation/accuracy"] > self.best_accuracy:
                self.best_accuracy = metrics["validation/accuracy"]
                self._save_best(step)
        self.tracker.log_metrics({"train/epoch": engine.state.epoch}, step)

    def _save_best(self, step: int) -> None:
        if self.tracker.enabled:
            save_model_file(self.eval_model(), self.model_metadata,
                            self.tracker.path(BEST_MODEL_FILE), iteration=step,
                            validation_accuracy=self.best_accuracy)
            self.tracker.publish(BEST_MODEL_FILE)

    def _on_completed(self, engine: Engine) -> None:
        self._evaluate(engine)  # the final figures always come from the final weights

    def resume_from(self, point: ckpt.ResumePoint) -> None:
        state, self.last_checkpoint = point.load(next(self.model.parameters()).device)
        ckpt.restore(state, self.state_objects())

    def run(self, data, max_epochs: int, epoch_length: int) -> float:
        """Train; returns the wall time in seconds."""
        start = time.perf_counter()
        self.trainer.run(data, max_epochs=max_epochs, epoch_length=epoch_length)
        return time.perf_counter() - start
