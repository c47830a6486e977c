"""Classification metrics derived from one confusion matrix."""

from __future__ import annotations

import torch


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """Rows: true class, columns: predicted class."""
    flat = targets.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def summarise(matrix: torch.Tensor) -> dict[str, float | list[float]]:
    """Accuracy, macro precision/recall/F1 and per-class accuracy (recall) of a confusion matrix.

    The macro averages run over the classes present in the labels (a split may lack a class); a
    present class the model never predicts counts 0, so a model that ignores a class is not
    rewarded.
    """
    matrix = matrix.double()
    correct = matrix.diagonal()
    true_counts = matrix.sum(1)
    predicted_counts = matrix.sum(0)
    recall = torch.where(true_counts > 0, correct / true_counts.clamp(min=1), 0.0)
    precision = torch.where(predicted_counts > 0, correct / predicted_counts.clamp(min=1), 0.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), 0.0)
    present = true_counts > 0
    return {
        "accuracy": float(correct.sum() / matrix.sum().clamp(min=1)),
        "precision_macro": float(precision[present].mean()) if present.any() else 0.0,
        "recall_macro": float(recall[present].mean()) if present.any() else 0.0,
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_accuracy": recall.tolist(),
    }
