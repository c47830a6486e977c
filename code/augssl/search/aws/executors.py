"""Where the evaluations of a search loop run: one after the other in the search process
(``inprocess``), or in parallel on Ray workers (``ray``). Both compute each evaluation with the
same ``PolicyEvaluator`` and the thread count the search process decided, so that an evaluation's
result does not depend on where it runs."""

from __future__ import annotations

import torch

from augssl.config import ConfigError
from augssl.engine.session import Session, open_session
from augssl.search.aws.policy_evaluation import (
    EvaluationResult,
    EvaluationTask,
    PolicyEvaluator,
    evaluation_threads,
)

EXECUTORS = ("inprocess", "ray")


class InProcessEvaluations:
    def __init__(self, evaluator: PolicyEvaluator):
        self.evaluator = evaluator

    def run(self, joint: torch.Tensor, tasks: list[EvaluationTask]) -> list[EvaluationResult]:
        return [self.evaluator.evaluate(joint, task) for task in tasks]

    def close(self) -> None:
        pass


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("executor=ray needs Ray, which is not installed here: run "
                          "`pip install ray` (or `pip install -e .[ray]` in this repository), "
                          "or use executor=inprocess.") from None
    return ray


class RemotePolicyEvaluator:
    """A Ray worker: it opens its own session (data on its device) and rebuilds the shared
    weights from their state."""

    def __init__(self, entry: str, config, shared_state: dict, epoch_length: int, threads: int):
        session = open_session(entry, config)
        model = session.create_model()
        model.load_state_dict(shared_state["model"])
        self.evaluator = PolicyEvaluator(session, model, shared_state["optimizer"], epoch_length,
                                         threads)

    def evaluate(self, joint: torch.Tensor, task: EvaluationTask) -> EvaluationResult:
        return self.evaluator.evaluate(joint, task)


class RayEvaluations:
    """The evaluations of a loop spread over Ray workers, each built once for the search."""

    def __init__(self, entry: str, config, shared_state: dict, epoch_length: int, threads: int):
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=config.ray_address or None)
        gpus = config.ray_gpus_per_worker
        if gpus < 0:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        worker = ray.remote(num_gpus=gpus, num_cpus=threads)(RemotePolicyEvaluator)
        shared = ray.put(shared_state)
        count = config.ray_workers or config.evaluations_per_loop
        self.ray = ray
        self.workers = [worker.remote(entry, config, shared, epoch_length, threads)
                        for _ in range(count)]

    def run(self, joint: torch.Tensor, tasks: list[EvaluationTask]) -> list[EvaluationResult]:
        pending = [self.workers[i % len(self.workers)].evaluate.remote(joint, task)
                   for i, task in enumerate(tasks)]
        return self.ray.get(pending)

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)


def on_cpu(value):
    """A state dict (nested dicts, lists, tensors) with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(item) for item in value)
    return value


def open_executor(session: Session, model, optimizer, epoch_length: int):
    """The executor ``session.config.executor`` names, its evaluations starting from ``model``
    and ``optimizer`` as they are now (the end of stage 1)."""
    threads = evaluation_threads(session.config)
    if session.config.executor == "ray":
        shared = on_cpu({"model": model.state_dict(), "optimizer": optimizer.state_dict()})
        return RayEvaluations(session.entry, session.config, shared, epoch_length, threads)
    return InProcessEvaluations(PolicyEvaluator(session, model, optimizer.state_dict(),
                                                epoch_length, threads))
