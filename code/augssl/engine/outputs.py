"""What every training entry leaves behind when it ends: figures, final model, summary."""

from __future__ import annotations

import json

import torch

from augssl.data.loaders import view
from augssl.engine.model_export import export_models


def write_final_outputs(session, loop, augmented_examples: torch.Tensor, wall_time: float,
                        extra_summary: dict | None = None) -> dict:
    """Log the wall time and the training iterations, write the run's figures, models and
    summary.json; returns the summary.

    ``augmented_examples`` is a uint8 batch of training images as the model saw them.
    """
    tracker = session.tracker
    # The iterations beside the wall time give a report its steps/s (augssl.report.summaries).
    iterations = loop.trainer.state.iteration
    tracker.log_metrics({"wall_time_s": wall_time, "train/iterations": iterations}, iterations)
    test_metrics, matrix = loop.last_results["test"]
    summary = {"test_accuracy": test_metrics["test/accuracy"],
               "best_validation_accuracy": loop.best_accuracy, "wall_time_s": wall_time,
               "run_id": tracker.run_id, **(extra_summary or {})}
    if not tracker.enabled:
        return summary
    from augssl.engine.figures import augmented_grid, plot_confusion_matrix

    step = loop.trainer.state.iteration
    tracker.log_figure(plot_confusion_matrix(matrix, session.bundle.classes,
                                             f"test accuracy {summary['test_accuracy']:.4f}"),
                       "confusion_matrix.png")
    tracker.log_image(augmented_grid(augmented_examples), "augmented_samples.png", step)
    export_models(loop.eval_model(), tracker, loop.model_metadata, session.config.register_model)
    tracker.path("summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    tracker.log_hparams(session.config, summary, step)
    print(f"{session.entry}: test accuracy {summary['test_accuracy']:.4f} "
          f"(run {tracker.run_id}, {wall_time:.1f} s)")
    return summary


def augmented_examples(batches, augment, generator: torch.Generator, device,
                       view_index: int = 0) -> torch.Tensor:
    """Up to 32 images of the first batch in view ``view_index``, augmented as in training
    (by ``augment`` on the device, or already by the DataLoader workers)."""
    images = view(next(iter(batches))[0][:32], view_index).to(device)
    return augment(images, generator) if augment is not None else images
