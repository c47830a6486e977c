"""The evaluator: an ignite engine accumulating one confusion matrix per split."""

from __future__ import annotations

import torch
from ignite.engine import Engine
from ignite.metrics import ConfusionMatrix

from augssl.engine.metrics import summarise


def create_evaluator(model_for_eval, prepare, precision, num_classes: int) -> Engine:
    """``model_for_eval()`` returns the module to evaluate (EMA weights when they are on)."""

    @torch.no_grad()
    def step(engine, batch):
        model = model_for_eval()
        model.eval()
        images, targets, _ = batch
        with precision.autocast():
            logits = model(prepare(images))
        return logits.float(), targets.to(logits.device)

    evaluator = Engine(step)
    ConfusionMatrix(num_classes=num_classes).attach(evaluator, "confusion")
    return evaluator


def evaluate(evaluator: Engine, batches, split: str, class_names: list[str]
             ) -> tuple[dict[str, float], torch.Tensor]:
    """Run ``evaluator`` over ``batches``: (metrics named ``<split>/<metric>``, confusion
    matrix)."""
    evaluator.run(batches)
    matrix = evaluator.state.metrics["confusion"].cpu()
    summary = summarise(matrix)
    per_class = summary.pop("per_class_accuracy")
    metrics = {f"{split}/{name}": value for name, value in summary.items()}
    for name, value in zip(class_names, per_class):
        metrics[f"{split}/class_accuracy/{_metric_safe(name)}"] = value
    return metrics, matrix


def _metric_safe(name: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and spaces only."""
    return "".join(c if c.isalnum() or c in "_-. " else "_" for c in str(name))
