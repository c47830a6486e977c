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

Which pairs an evaluation tests: by default each image of its fine-tuning draws from the whole
policy, and the update spreads the reward over those pairs. A departure from that reading of the
paper, on by `sub_policies_per_evaluation=K`: the evaluation draws K pairs from the policy
(AutoAugment's controller samples policies of 5 sub-policies) and fine-tunes with them alone, and
the update credits its reward to them. With per-image draws, the evaluations of a loop see the
same mix of the 1296 pairs, so their rewards differ by noise alone and a search of tens of loops
cannot move the policy; with a few pairs each, they differ by what those pairs do.

    python code/aws_search.py CIFAR10 wideresnet --params "num_epochs=100;search_loops=100"

The search run leaves policy.json (read it back with `augssl.search.aws.load_policy`),
policy_heatmap.png, policy_entropy.png, shared_weights.pt (the weights every evaluation starts
from) and summary.json (with, per operation, the share of the policy's pairs that apply it and
the mean reward of the evaluations that did and did not); each evaluation is a child run with
its reward and the pairs it sampled.
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import json
import math
import statistics
import time
from dataclasses import dataclass

import torch
from ignite.engine import Engine

from augssl.config import ConfigError, spec
from augssl.data.streams import BatchStreams
from augssl.engine.checkpoint import resolve_resume
from augssl.engine.config import TrainingConfig
from augssl.engine.entry import launch
from augssl.engine.evaluation import evaluate
from augssl.engine.optim import build_optimizer, build_scheduler
from augssl.engine.session import Session, open_session, run_tracked
from augssl.engine.trainer import TrainingLoop
from augssl.search.aws import (
    NUM_PAIRS,
    EMABaseline,
    PairPolicy,
    PolicyEvaluation,
    PolicyPPO,
    PPOConfig,
    save_policy,
)
from augssl.search.aws.child_runs import discard_unfinished_loop, log_evaluations
from augssl.search.aws.executors import EXECUTORS, import_ray, open_executor
from augssl.search.aws.operation_summary import (
    operation_rewards,
    operation_usage,
    operations_applied,
)
from augssl.search.aws.policy_evaluation import EvaluationTask, validation_batches
from augssl.search.aws.training_step import PairAugment, pair_step

ENTRY = "aws_search"
POLICY_FILE = "policy.json"
SHARED_WEIGHTS_FILE = "shared_weights.pt"


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
    sub_policies_per_evaluation: int = spec(
        0, "stage 2: pairs each evaluation draws from the policy and fine-tunes with, each image "
        "taking one of them at random, as AutoAugment's controller samples a policy of 5 "
        "sub-policies; the PPO update credits the reward to those pairs alone. 0: each image "
        "draws its own pair from the whole policy", min=0)
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


def reward_std_error(rewards: list[float]) -> float | None:
    """The standard error of a loop's mean reward, from its evaluations' spread (None with one
    evaluation): rewards of policies closer than about twice this are noise to the PPO update."""
    if len(rewards) < 2:
        return None
    return statistics.stdev(rewards) / math.sqrt(len(rewards))


class SearchProgress:
    """Where the search stands, checkpointed with the shared weights: whether stage 1 is over,
    the policy with its PPO state (Adam, reward baseline), the loops finished, the entropy
    before any loop and after each, each loop's reward standard error, and every evaluation's
    credited operations with its reward."""

    def __init__(self, ppo: PolicyPPO):
        self.ppo = ppo
        self.stage1_finished = False
        self.finished_loops = 0
        with torch.no_grad():
            self.entropies = [float(ppo.policy.entropy())]
        self.reward_std_errors: list[float] = []
        self.evaluations: list[tuple[list[str], float]] = []

    @property
    def policy(self) -> PairPolicy:
        return self.ppo.policy

    def record(self, stats: dict, std_error: float | None,
               evaluations: list[tuple[list[str], float]]) -> None:
        self.finished_loops += 1
        self.evaluations.extend(evaluations)
        self.entropies.append(stats["entropy"])
        if std_error is not None:
            self.reward_std_errors.append(std_error)

    def state_dict(self) -> dict:
        return {"ppo": self.ppo.state_dict(), "stage1_finished": self.stage1_finished,
                "finished_loops": self.finished_loops, "entropies": list(self.entropies),
                "reward_std_errors": list(self.reward_std_errors),
                "evaluations": [[list(ops), reward] for ops, reward in self.evaluations]}

    def load_state_dict(self, state: dict) -> None:
        self.ppo.load_state_dict(state["ppo"])
        self.stage1_finished = bool(state["stage1_finished"])
        self.finished_loops = int(state["finished_loops"])
        self.entropies = [float(value) for value in state["entropies"]]
        # checkpoints written before the standard errors were kept have none
        self.reward_std_errors = [float(v) for v in state.get("reward_std_errors", [])]
        # and none of the evaluations' operations before those were
        self.evaluations = [([str(op) for op in ops], float(reward))
                            for ops, reward in state.get("evaluations", [])]


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


def log_loop(session: Session, progress: SearchProgress, stats: dict,
             rewards: list[float], std_error: float | None) -> None:
    top = progress.policy.top_k(1)[0]
    metrics = {
        "search/mean_reward": stats["mean_reward"], "search/best_reward": max(rewards),
        "search/baseline": stats["baseline"], "search/mean_advantage": stats["mean_advantage"],
        "search/policy_entropy": stats["entropy"], "search/kl": stats["kl"],
        "search/top1_probability": top.probability, "search/ppo_steps": stats["steps"],
        "search/ppo_early_stopped": stats["early_stopped"]}
    spread = ""
    if std_error is not None:
        metrics["search/reward_std_error"] = std_error
        spread = f" ± {std_error:.4f}"
    session.tracker.log_metrics(metrics, progress.finished_loops)
    print(f"{ENTRY}: loop {progress.finished_loops}/{session.config.search_loops} mean reward "
          f"{stats['mean_reward']:.4f}{spread} entropy {stats['entropy']:.4f} top {top.first} -> "
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
        stats = progress.ppo.update([PolicyEvaluation(r.drawn_pairs, r.reward) for r in results])
        rewards = [result.reward for result in results]
        std_error = reward_std_error(rewards)
        progress.record(stats, std_error, [(operations_applied(r.drawn_pairs), r.reward)
                                           for r in results])
        log_evaluations(run_id, experiment_id, results)
        log_loop(session, progress, stats, rewards, std_error)
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
    errors = progress.reward_std_errors
    usage = operation_usage(progress.policy.joint())
    uniform = operation_usage(PairPolicy().joint())
    summary = {"run_id": tracker.run_id, "search_loops": progress.finished_loops,
               "policy_entropy": progress.entropies[-1],
               "mean_reward_std_error": statistics.fmean(errors) if errors else None,
               "stage1_best_validation_accuracy": loop.best_accuracy,
               "top_sub_policies": [sub._asdict() for sub in top],
               "operation_usage": {op: {"learned": share, "uniform": uniform[op]}
                                   for op, share in usage.items()},
               "operation_rewards": operation_rewards(progress.evaluations),
               "wall_time_s": wall_time}
    tracker.path("summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    tracker.log_hparams(c, summary, progress.finished_loops)
    listed = ", ".join(f"{sub.first} -> {sub.second} ({sub.probability:.4f})" for sub in top)
    print(f"{ENTRY}: policy of run {tracker.run_id} after {progress.finished_loops} loops; most "
          f"probable: {listed}")
    shares = ", ".join(f"{op} {share:.3f} ({uniform[op]:.3f})" for op, share in
                       sorted(usage.items(), key=lambda item: item[1] / uniform[item[0]]))
    print(f"{ENTRY}: share of the policy's pairs applying each operation (uniform): {shares}")


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
    # stage 1: the shared weights learn under the uniform policy
    trainer = Engine(pair_step(model, optimizer, session.precision,
                               PairAugment(session.augment_spec(), config.enlarge_batch),
                               PairPolicy().transform(), session.preparer(),
                               config.label_smoothing, stream=0, first_step=1))
    progress = SearchProgress(PolicyPPO(PairPolicy(), config.ppo_config()))
    loop = TrainingLoop(
        config=config, trainer=trainer, model=model, optimizer=optimizer, scheduler=scheduler,
        precision=session.precision, tracker=session.tracker,
        class_names=session.bundle.classes, prepare_eval=session.preparer(),
        eval_splits={"validation": validation_batches(session)},
        extra_state={"search": progress, "streams": BatchStreams({"data": batches})})
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
