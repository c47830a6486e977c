"""AWS AutoAugment search (Tian et al., "Improving Auto-Augment via Augmentation-Wise Weight
Sharing", arXiv 2009.14737).

Stage 1 trains shared weights on the train split, each image augmented by the weak crop/flip, a
pair (op1, op2) drawn from the uniform policy over the 36 x 36 ordered pairs, then Cutout, for the
first `num_epochs` of a cosine schedule of `num_epochs + finetune_epochs` epochs. Stage 2 repeats
`search_loops` times: each of `evaluations_per_loop` evaluations fine-tunes its own copy of the
shared weights with the current policy along the schedule's last `finetune_epochs`, its reward
being the mean of its two best validation accuracies; one PPO update then moves the policy
towards the pairs sampled by the evaluations that beat the reward baseline. The evaluations of a
loop are independent: they run one after the other in this process, or on Ray workers
(`executor=ray`).

    python code/aws_search.py CIFAR10 wideresnet --params "num_epochs=100;search_loops=100"

The search run leaves policy.json (read it back with `augssl.search.aws.load_policy`),
policy_heatmap.png, policy_entropy.png, shared_weights.pt (the weights every evaluation starts
from) and summary.json; each evaluation is a child run with its reward and the pairs it sampled.
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import copy
import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from ignite.engine import Engine

from augssl.augment import AugmentSpec, BatchCutout, BatchWeak
from augssl.config import ConfigError, spec
from augssl.data.loaders import cycle, derived_seed, resume_batches
from augssl.engine.amp import Precision
from augssl.engine.checkpoint import resolve_resume
from augssl.engine.config import TrainingConfig
from augssl.engine.entry import launch
from augssl.engine.evaluation import create_evaluator, evaluate
from augssl.engine.optim import build_optimizer, build_scheduler, lr_factor
from augssl.engine.session import Session, available_cores, open_session, run_tracked
from augssl.engine.trainer import NonFiniteLossError, TrainingLoop
from augssl.search.aws import (
    NUM_OPERATIONS,
    NUM_PAIRS,
    OPERATION_NAMES,
    EMABaseline,
    EnlargedBatch,
    PairPolicy,
    PairPolicyTransform,
    PolicyEvaluation,
    PolicyPPO,
    PPOConfig,
    best_mean_reward,
    enlarge_batch,
    fork_model,
    pair_counts,
    save_policy,
)

ENTRY = "aws_search"
EXECUTORS = ("inprocess", "ray")
POLICY_FILE = "policy.json"
SHARED_WEIGHTS_FILE = "shared_weights.pt"
PARENT_TAG = "mlflow.parentRunId"  # what MLflow reads to nest a run under another
LOOP_TAG = "augssl.search_loop"
EVALUATION_TAG = "augssl.evaluation"
VALIDATION_BATCH_SIZE = 512


@dataclass(frozen=True)
class AwsSearchConfig(TrainingConfig):
    num_validation_samples: int = spec(10000, "images held out of train for the rewards, never "
                                       "augmented (the original: 10000 of CIFAR's 50000)", min=1)
    num_epochs: int = spec(100, "stage 1: epochs of the shared weights under the uniform policy "
                           "(the original: 200)", min=1)
    label_smoothing: float = spec(0.1, "label smoothing of the training loss, both stages",
                                  min=0.0, max=1.0)
    policy: str = spec("uniform", "stage-1 policy over the pairs: uniform, as in the paper",
                       choices=("uniform",))
    finetune_epochs: int = spec(5, "stage 2: epochs each evaluation fine-tunes its copy of the "
                                "shared weights, along the last epochs of the cosine schedule "
                                "(the original: the last 10 of 210)", min=1)
    search_loops: int = spec(100, "stage 2: policy updates (the original: 350 to 800)", min=1)
    evaluations_per_loop: int = spec(4, "independent fine-tunings of the current policy per "
                                     "update", min=1)
    top_k: int = spec(20, "most probable sub-policies listed in policy.json", min=1,
                      max=NUM_PAIRS)
    ppo_clip: float = spec(0.2, "PPO clip of the probability ratio", min=0.0)
    ppo_learning_rate: float = spec(0.1, "Adam learning rate of the policy", min=0.0)
    ppo_betas: tuple[float, ...] = spec((0.5, 0.999), "Adam betas of the policy (two values)",
                                        min=0.0, max=1.0)
    ppo_steps: int = spec(5, "Adam steps per PPO update (fewer when max_kl stops it)", min=1)
    entropy_coefficient: float = spec(1e-4, "weight of the policy-entropy bonus", min=0.0)
    max_kl: float = spec(0.02, "a PPO update stops once KL(old || new) exceeds this", min=0.0)
    baseline_decay: float = spec(0.9, "decay of the moving-average reward baseline", min=0.0,
                                 max=1.0)
    enlarge_batch: int = spec(1, "Enlarge Batch: copies of each image in a batch, each with its "
                              "own pair (both stages); 1: off", min=1)
    executor: str = spec("inprocess", "where the evaluations of a loop run: one after the other "
                         "in this process, or in parallel on Ray workers", choices=EXECUTORS)
    ray_address: str = spec("", "Ray cluster to join (e.g. auto or ray://head:10001); empty: "
                            "start a local Ray")
    ray_workers: int = spec(0, "Ray workers, each holding the data and the shared weights; 0: "
                            "one per evaluation of a loop", min=0)
    ray_gpus_per_worker: float = spec(-1.0, "GPUs each Ray worker reserves (fractions share a "
                                      "GPU); -1: one when the cluster has GPUs, else none",
                                      min=-1.0)
    threads_per_evaluation: int = spec(0, "CPU threads each evaluation computes with, in this "
                                       "process and on a Ray worker alike, so that its result "
                                       "does not depend on where it runs (a Ray worker reserves "
                                       "as many CPUs); 0: this machine's cores shared by the "
                                       "evaluations that a loop could run at once", min=0)

    def validate(self) -> None:
        if self.backend or self.nproc_per_node > 1:
            raise ConfigError(f"backend={self.backend!r}, nproc_per_node={self.nproc_per_node}: "
                              "aws_search trains in one process; its policy evaluations scale "
                              "out with executor=ray instead. Leave backend empty and "
                              "nproc_per_node=1.")
        if self.register_model:
            raise ConfigError("register_model: aws_search learns a policy, not a model to "
                              "register; train with policy=aws:<this run's id> and register "
                              "that run's model.")
        super().validate()
        if self.augment_on != "device":
            raise ConfigError("augment_on=cpu is not available to aws_search: the pairs each "
                              "image received are counted on the training device. Use "
                              "augment_on=device.")
        if self.ema_decay > 0:
            raise ConfigError(f"ema_decay={self.ema_decay}: the evaluations fine-tune and measure "
                              "copies of the raw shared weights, so an average would be unused. "
                              "Leave ema_decay=0.")
        if len(self.ppo_betas) != 2 or not all(0.0 <= beta < 1.0 for beta in self.ppo_betas):
            raise ConfigError(f"ppo_betas={','.join(map(str, self.ppo_betas))}: expected two "
                              "values in [0, 1), e.g. ppo_betas=0.5,0.999.")
        try:
            self.ppo_config()
            EMABaseline(self.baseline_decay)
        except ValueError as error:
            raise ConfigError(f"invalid PPO setting: {error}. Adjust ppo_clip, ppo_steps, "
                              "max_kl, entropy_coefficient or baseline_decay.") from None

    def ppo_config(self) -> PPOConfig:
        return PPOConfig(clip=self.ppo_clip, learning_rate=self.ppo_learning_rate,
                         betas=tuple(self.ppo_betas), inner_steps=self.ppo_steps,
                         entropy_coefficient=self.entropy_coefficient, max_kl=self.max_kl,
                         baseline_decay=self.baseline_decay)


class PairAugment:
    """The search's training augmentation: weak crop/flip, one pair drawn from a policy for each
    image (with Enlarge Batch, `multiplicity` copies of each image, each with its own pair),
    then Cutout."""

    def __init__(self, spec: AugmentSpec, multiplicity: int):
        self.weak = BatchWeak(spec.pad, spec.flip)
        self.cutout = BatchCutout(spec.cutout_size, spec.fill)
        self.fill = spec.fill
        self.multiplicity = multiplicity

    def __call__(self, images: torch.Tensor, targets: torch.Tensor,
                 transform: PairPolicyTransform, generator: torch.Generator) -> EnlargedBatch:
        batch = enlarge_batch(self.weak(images, generator), targets, transform,
                              self.multiplicity, generator, self.fill)
        return batch._replace(images=self.cutout(batch.images, generator))


def train_on_batch(model, optimizer, precision: Precision, augment: PairAugment,
                   transform: PairPolicyTransform, prepare, batch, step: int, stream: int,
                   label_smoothing: float) -> tuple[torch.Tensor, EnlargedBatch]:
    """One optimiser step on a batch augmented with pairs from ``transform``; the augmentation
    randomness depends only on (seed, step, stream)."""
    model.train()
    images, targets, _ = batch
    images = images.to(prepare.device, non_blocking=True)
    targets = targets.to(prepare.device, non_blocking=True)
    augmented = augment(images, targets, transform, prepare.generator_for(step, stream))
    with precision.autocast():
        logits = model(prepare.normalise(augmented.images))
        loss = F.cross_entropy(logits, augmented.targets, label_smoothing=label_smoothing)
    precision.backward_and_step(loss, optimizer)
    return loss.detach(), augmented


def make_shared_step(model, optimizer, precision, augment, prepare, label_smoothing: float):
    """Stage 1: the shared weights learn under the uniform policy."""
    uniform = PairPolicy().transform()

    def step(engine: Engine, batch) -> dict:
        loss, _ = train_on_batch(model, optimizer, precision, augment, uniform, prepare, batch,
                                 engine.state.iteration, 0, label_smoothing)
        return {"loss": loss}

    return step


class EvaluationTask(NamedTuple):
    loop: int  # 1-based search loop
    index: int  # 1-based evaluation within the loop


class EvaluationResult(NamedTuple):
    loop: int
    index: int
    reward: float
    accuracies: list[float]  # validation accuracy after each fine-tuning epoch
    pair_counts: torch.Tensor  # (36, 36) int64 on the CPU
    weight_shift: float  # |w_copy - w_shared| / |w_shared| over the parameters
    seconds: float


def relative_change(changed: torch.nn.Module, reference: torch.nn.Module) -> float:
    with torch.no_grad():
        pairs = list(zip(changed.parameters(), reference.parameters()))
        delta = torch.stack([(a - b).float().pow(2).sum() for a, b in pairs]).sum()
        norm = torch.stack([b.float().pow(2).sum() for _, b in pairs]).sum()
    return math.sqrt(float(delta) / max(float(norm), 1e-30))


def evaluation_threads(config: AwsSearchConfig) -> int:
    """The intra-op thread count of every evaluation, decided once by the search process: the
    float sums of a convolution depend on how many threads split them."""
    if config.threads_per_evaluation:
        return config.threads_per_evaluation
    at_once = config.ray_workers or config.evaluations_per_loop
    return max(1, available_cores() // at_once)


@contextmanager
def intra_op_threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class PolicyEvaluator:
    """Fine-tunes copies of the shared weights with a policy and measures them on the
    validation split. It holds everything an evaluation needs (data, shared weights, stage-1
    optimiser state), so that it lives in the search process or in a Ray worker alike; an
    evaluation is a pure function of (seed, loop, index, policy), computed with ``threads``
    intra-op threads wherever it runs."""

    def __init__(self, session: Session, shared_model: torch.nn.Module,
                 shared_optimizer_state: dict, epoch_length: int, threads: int):
        c = session.config
        self.session = session
        self.threads = threads
        self.shared_model = shared_model
        self.optimizer_state = shared_optimizer_state
        self.epoch_length = epoch_length
        self.stage1_steps = c.num_epochs * epoch_length
        self.total_steps = (c.num_epochs + c.finetune_epochs) * epoch_length
        self.augment = PairAugment(session.augment_spec(), c.enlarge_batch)
        self.prepare = session.preparer()
        self.validation = validation_batches(session)

    def _optimizer_on(self, parameters) -> torch.optim.Optimizer:
        # the copy goes on from stage 1's momentum; a deep copy, since loading a state dict on
        # the same device would share the shared optimiser's buffers with this one
        optimizer = build_optimizer(self.session.config, parameters)
        optimizer.load_state_dict(copy.deepcopy(self.optimizer_state))
        return optimizer

    def evaluate(self, joint: torch.Tensor, task: EvaluationTask) -> EvaluationResult:
        start = time.perf_counter()
        device = self.session.device
        devices = [torch.cuda.current_device()] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), intra_op_threads(self.threads):
            torch.manual_seed(derived_seed(self.session.config.seed, task.loop, task.index))
            fork = fork_model(self.shared_model, self._optimizer_on)
            accuracies, counts = self._fine_tune(fork, PairPolicyTransform(joint), task)
        return EvaluationResult(task.loop, task.index, best_mean_reward(accuracies), accuracies,
                                counts, relative_change(fork.model, self.shared_model),
                                time.perf_counter() - start)

    def _fine_tune(self, fork, transform: PairPolicyTransform, task: EvaluationTask):
        c, session = self.session.config, self.session
        stream = (task.loop - 1) * c.evaluations_per_loop + task.index  # 0 is stage 1's
        batches, _ = session.batches(session.bundle.train, session.splits.labelled,
                                     c.batch_size, train=True, stream=stream)
        data = cycle(batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(fork.optimizer, lambda step: lr_factor(
            self.stage1_steps + step, self.total_steps, c.num_warmup_steps, c.lr_schedule,
            c.min_lr_ratio))
        precision = Precision(c.amp, session.device)
        evaluator = create_evaluator(lambda: fork.model, self.prepare, precision,
                                     session.num_classes)
        counts = torch.zeros(NUM_OPERATIONS, NUM_OPERATIONS, dtype=torch.int64,
                             device=session.device)
        nonfinite = torch.zeros((), dtype=torch.bool, device=session.device)
        accuracies = []
        for epoch in range(c.finetune_epochs):
            for step in range(epoch * self.epoch_length, (epoch + 1) * self.epoch_length):
                loss, augmented = train_on_batch(fork.model, fork.optimizer, precision,
                                                 self.augment, transform, self.prepare,
                                                 next(data), step, stream, c.label_smoothing)
                scheduler.step()
                counts = counts + pair_counts(augmented.first, augmented.second)
                nonfinite |= ~torch.isfinite(loss)
            if bool(nonfinite):
                raise NonFiniteLossError(
                    f"the fine-tuning loss of evaluation {task.index} of search loop {task.loop} "
                    "became NaN or infinite; lower learning_rate or turn amp off. The search "
                    "resumes from its last finished loop with resume=<run id>.")
            metrics, _ = evaluate(evaluator, self.validation, "validation", session.bundle.classes)
            accuracies.append(metrics["validation/accuracy"])
        return accuracies, counts.cpu()


def validation_batches(session: Session):
    return session.batches(session.bundle.train, session.splits.validation,
                           VALIDATION_BATCH_SIZE, train=False)[0]


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

    def __init__(self, config: AwsSearchConfig, shared_state: dict, epoch_length: int,
                 threads: int):
        session = open_session(ENTRY, config)
        model = session.create_model()
        model.load_state_dict(shared_state["model"])
        self.evaluator = PolicyEvaluator(session, model, shared_state["optimizer"], epoch_length,
                                         threads)

    def evaluate(self, joint: torch.Tensor, task: EvaluationTask) -> EvaluationResult:
        return self.evaluator.evaluate(joint, task)


class RayEvaluations:
    """The evaluations of a loop spread over Ray workers, each built once for the search."""

    def __init__(self, config: AwsSearchConfig, shared_state: dict, epoch_length: int,
                 threads: int):
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
        self.workers = [worker.remote(config, shared, epoch_length, threads)
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
    threads = evaluation_threads(session.config)
    if session.config.executor == "ray":
        shared = on_cpu({"model": model.state_dict(), "optimizer": optimizer.state_dict()})
        return RayEvaluations(session.config, shared, epoch_length, threads)
    return InProcessEvaluations(PolicyEvaluator(session, model, optimizer.state_dict(),
                                                epoch_length, threads))


class SearchProgress:
    """Where the search stands, checkpointed with the shared weights: whether stage 1 is over,
    the policy with its PPO state (Adam, reward baseline), the loops finished, and the entropy
    before any loop and after each."""

    def __init__(self, ppo: PolicyPPO):
        self.ppo = ppo
        self.stage1_finished = False
        self.finished_loops = 0
        with torch.no_grad():
            self.entropies = [float(ppo.policy.entropy())]

    @property
    def policy(self) -> PairPolicy:
        return self.ppo.policy

    def record(self, stats: dict) -> None:
        self.finished_loops += 1
        self.entropies.append(stats["entropy"])

    def state_dict(self) -> dict:
        return {"ppo": self.ppo.state_dict(), "stage1_finished": self.stage1_finished,
                "finished_loops": self.finished_loops, "entropies": list(self.entropies)}

    def load_state_dict(self, state: dict) -> None:
        self.ppo.load_state_dict(state["ppo"])
        self.stage1_finished = bool(state["stage1_finished"])
        self.finished_loops = int(state["finished_loops"])
        self.entropies = [float(value) for value in state["entropies"]]


def save_search_checkpoint(loop: TrainingLoop, number: int) -> None:
    """Checkpoint ``number``: the stage-1 iterations plus the search loops finished."""
    loop.last_checkpoint = loop.tracker.save_checkpoint(number, loop.state_objects())


def save_shared_weights(session: Session, loop: TrainingLoop) -> None:
    metrics, _ = evaluate(loop.evaluator, loop.eval_splits["validation"], "validation",
                          session.bundle.classes)
    validation = metrics["validation/accuracy"]
    torch.save({"model": loop.model.state_dict(), "network": session.config.network,
                "iteration": loop.trainer.state.iteration, "validation_accuracy": validation},
               session.tracker.path(SHARED_WEIGHTS_FILE))
    session.tracker.publish(SHARED_WEIGHTS_FILE)
    print(f"{ENTRY}: shared weights trained, validation accuracy {validation:.4f}")


def pair_count_summary(counts: torch.Tensor, top: int = 10) -> dict:
    flat = counts.reshape(-1)
    values, order = flat.topk(top)
    return {"operations": list(OPERATION_NAMES), "counts": counts.tolist(),
            "most_sampled": [{"first": OPERATION_NAMES[i // NUM_OPERATIONS],
                              "second": OPERATION_NAMES[i % NUM_OPERATIONS], "count": int(v)}
                             for v, i in zip(values.tolist(), order.tolist()) if v > 0]}


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
                   "top_pair_share": int(counts.max()) / total,
                   "fine_tune_seconds": result.seconds}
        metrics = [Metric(name, float(value), now, 0) for name, value in summary.items()]
        metrics += [Metric("validation/accuracy", accuracy, now, epoch)
                    for epoch, accuracy in enumerate(result.accuracies, 1)]
        client.log_batch(child.info.run_id, metrics=metrics)
        client.log_dict(child.info.run_id, pair_count_summary(counts), "pair_counts.json")
        client.set_terminated(child.info.run_id, "FINISHED")


def discard_unfinished_loop(parent_id: str, experiment_id: str, loop: int) -> None:
    """Delete the child runs a crashed loop logged before its checkpoint: the loop runs again."""
    import mlflow

    client = mlflow.MlflowClient()
    query = f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{LOOP_TAG}` = '{loop}'"
    for run in client.search_runs([experiment_id], filter_string=query):
        client.delete_run(run.info.run_id)


def log_loop(session: Session, progress: SearchProgress, stats: dict,
             results: list[EvaluationResult]) -> None:
    top = progress.policy.top_k(1)[0]
    rewards = [result.reward for result in results]
    session.tracker.log_metrics({
        "search/mean_reward": stats["mean_reward"], "search/best_reward": max(rewards),
        "search/baseline": stats["baseline"], "search/mean_advantage": stats["mean_advantage"],
        "search/policy_entropy": stats["entropy"], "search/kl": stats["kl"],
        "search/top1_probability": top.probability, "search/ppo_steps": stats["steps"],
        "search/ppo_early_stopped": stats["early_stopped"]}, progress.finished_loops)
    print(f"{ENTRY}: loop {progress.finished_loops}/{session.config.search_loops} mean reward "
          f"{stats['mean_reward']:.4f} entropy {stats['entropy']:.4f} top {top.first} -> "
          f"{top.second} ({top.probability:.5f})")


def run_search(session: Session, loop: TrainingLoop, progress: SearchProgress, executor,
               stage1_steps: int) -> None:
    """Stage 2 from the first unfinished loop; a checkpoint after every loop."""
    import mlflow

    c, run_id = session.config, session.tracker.run_id
    experiment_id = mlflow.get_run(run_id).info.experiment_id
    discard_unfinished_loop(run_id, experiment_id, progress.finished_loops + 1)
    if progress.finished_loops == 0:
        session.tracker.log_metrics({"search/policy_entropy": progress.entropies[0]}, 0)
    while progress.finished_loops < c.search_loops:
        number = progress.finished_loops + 1
        joint = progress.policy.joint().detach().cpu()
        tasks = [EvaluationTask(number, index) for index in range(1, c.evaluations_per_loop + 1)]
        results = executor.run(joint, tasks)
        stats = progress.ppo.update([PolicyEvaluation(r.pair_counts, r.reward) for r in results])
        progress.record(stats)
        log_evaluations(run_id, experiment_id, results)
        log_loop(session, progress, stats, results)
        save_search_checkpoint(loop, stage1_steps + progress.finished_loops)


def write_search_outputs(session: Session, loop: TrainingLoop, progress: SearchProgress,
                         wall_time: float) -> None:
    from augssl.search.aws.figures import plot_entropy_curve, plot_policy_heatmap

    c, tracker = session.config, session.tracker
    tracker.log_metrics({"wall_time_s": wall_time}, progress.finished_loops)
    save_policy(progress.policy, tracker.path(POLICY_FILE), top_k=c.top_k)
    tracker.log_figure(plot_policy_heatmap(progress.policy), "policy_heatmap.png")
    tracker.log_figure(plot_entropy_curve(progress.entropies), "policy_entropy.png")
    top = progress.policy.top_k(min(5, c.top_k))
    summary = {"run_id": tracker.run_id, "search_loops": progress.finished_loops,
               "policy_entropy": progress.entropies[-1],
               "stage1_best_validation_accuracy": loop.best_accuracy,
               "top_sub_policies": [sub._asdict() for sub in top], "wall_time_s": wall_time}
    tracker.path("summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    tracker.log_hparams(c, summary, progress.finished_loops)
    listed = ", ".join(f"{sub.first} -> {sub.second} ({sub.probability:.4f})" for sub in top)
    print(f"{ENTRY}: policy of run {tracker.run_id} after {progress.finished_loops} loops; most "
          f"probable: {listed}")


def training(local_rank: int, config: AwsSearchConfig) -> None:
    session = open_session(ENTRY, config)
    model = session.create_model()
    optimizer = build_optimizer(config, model.parameters())
    batches, _ = session.batches(session.bundle.train, session.splits.labelled,
                                 config.batch_size, train=True)
    epoch_length = config.epoch_length or len(batches)
    stage1_steps = config.num_epochs * epoch_length
    # one schedule for both stages: the fine-tunings follow its last finetune_epochs
    scheduler = build_scheduler(config, optimizer,
                                (config.num_epochs + config.finetune_epochs) * epoch_length)
    trainer = Engine(make_shared_step(model, optimizer, session.precision,
                                      PairAugment(session.augment_spec(), config.enlarge_batch),
                                      session.preparer(), config.label_smoothing))
    progress = SearchProgress(PolicyPPO(PairPolicy(), config.ppo_config()))
    loop = TrainingLoop(
        config=config, trainer=trainer, model=model, optimizer=optimizer, scheduler=scheduler,
        precision=session.precision, tracker=session.tracker,
        class_names=session.bundle.classes, prepare_eval=session.preparer(),
        eval_splits={"validation": validation_batches(session)},
        extra_state={"search": progress},
        on_resume=lambda state: resume_batches(batches, state.iteration))
    loop.attach()
    resume_point = resolve_resume(config.resume) if config.resume else None

    def body() -> None:
        start = time.perf_counter()
        if resume_point is not None:
            loop.resume_from(resume_point)
        if not progress.stage1_finished:
            # a crash between stage 1's last periodic checkpoint and its end resumes here at
            # the last iteration, where running the trainer again would restart it
            if trainer.state.iteration < stage1_steps:
                loop.run(batches, config.num_epochs, epoch_length)
            save_shared_weights(session, loop)
            progress.stage1_finished = True
            save_search_checkpoint(loop, stage1_steps)
        executor = open_executor(session, model, optimizer, epoch_length)
        try:
            run_search(session, loop, progress, executor, stage1_steps)
        finally:
            executor.close()
        write_search_outputs(session, loop, progress, time.perf_counter() - start)

    run_tracked(session, resume_point.run_id if resume_point else None, body)


def check_executor(config: AwsSearchConfig) -> None:
    if config.executor == "ray":
        import_ray()


def main(argv: list[str] | None = None) -> None:
    launch(ENTRY, AwsSearchConfig, training, argv, extra_checks=check_executor)


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main()
