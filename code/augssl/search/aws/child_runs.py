"""Every evaluation of the search as an MLflow child run of the search run, tagged with its loop
and index: its reward, its validation accuracy after each fine-tuning epoch, the pairs its
images received and those its policy update credited (pair_counts.json)."""

from __future__ import annotations

import time

import torch

from augssl.search.aws.policy_evaluation import EvaluationResult
from augssl.search.aws.space import NUM_OPERATIONS, OPERATION_NAMES

PARENT_TAG = "mlflow.parentRunId"  # what MLflow reads to nest a run under another
LOOP_TAG = "augssl.search_loop"
EVALUATION_TAG = "augssl.evaluation"


def _most_frequent(counts: torch.Tensor, top: int) -> list[dict]:
    values, order = counts.reshape(-1).topk(top)
    return [{"first": OPERATION_NAMES[i // NUM_OPERATIONS],
             "second": OPERATION_NAMES[i % NUM_OPERATIONS], "count": int(v)}
            for v, i in zip(values.tolist(), order.tolist()) if v > 0]


def pair_count_summary(counts: torch.Tensor, drawn: torch.Tensor, top: int = 10) -> dict:
    """The pairs the images received (all counts, the most frequent listed) and the most
    frequent of those drawn from the policy and credited by its update."""
    return {"operations": list(OPERATION_NAMES), "counts": counts.tolist(),
            "most_sampled": _most_frequent(counts, top), "credited": _most_frequent(drawn, top)}


def log_evaluations(parent_id: str, experiment_id: str,
                    results: list[EvaluationResult]) -> None:
    """One child run of the search run per evaluation: reward, accuracies, sampled pairs."""
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    for result in results:
        child = client.create_run(
            experiment_id, run_name=f"loop{result.loop}-evaluation{result.index}",
            tags={PARENT_TAG: parent_id, LOOP_TAG: str(result.loop),
                  EVALUATION_TAG: str(result.index)})
        counts = result.pair_counts
        total = int(counts.sum())
        now = int(time.time() * 1000)
        summary = {"reward": result.reward, "weight_shift": result.weight_shift,
                   "pairs_sampled": total, "distinct_pairs": int((counts > 0).sum()),
                   "pairs_credited": int(result.drawn_pairs.sum()),
                   "top_pair_share": int(counts.max()) / total,
                   "fine_tune_seconds": result.seconds}
        metrics = [Metric(name, float(value), now, 0) for name, value in summary.items()]
        metrics += [Metric("validation/accuracy", accuracy, now, epoch)
                    for epoch, accuracy in enumerate(result.accuracies, 1)]
        client.log_batch(child.info.run_id, metrics=metrics)
        client.log_dict(child.info.run_id, pair_count_summary(counts, result.drawn_pairs),
                        "pair_counts.json")
        client.set_terminated(child.info.run_id, "FINISHED")


def discard_unfinished_loop(parent_id: str, experiment_id: str, loop: int) -> None:
    """Delete the child runs a crashed loop logged before its checkpoint: the loop runs again."""
    import mlflow

    client = mlflow.MlflowClient()
    query = f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{LOOP_TAG}` = '{loop}'"
    for run in client.search_runs([experiment_id], filter_string=query):
        client.delete_run(run.info.run_id)
