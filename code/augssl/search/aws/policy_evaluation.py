"""One evaluation of stage 2: fine-tune a copy of the shared weights with a policy, through the
engine's ``TrainingLoop`` like every training run, and measure it on the validation split after
each epoch. The reward is the mean of its two best validation accuracies."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from contextlib import contextmanager
from typing import NamedTuple

import torch
from ignite.engine import Engine

from augssl.data.loaders import cycle, derived_seed
from augssl.engine.amp import Precision
from augssl.engine.optim import build_optimizer, build_scheduler
from augssl.engine.session import Session, available_cores
from augssl.engine.tracking import RunTracker
from augssl.engine.trainer import NonFiniteLossError, TrainingLoop
from augssl.search.aws.policy import PairPolicyTransform, draw_sub_policies, pair_counts
from augssl.search.aws.shared_weights import ForkedModel, best_mean_reward, fork_model
from augssl.search.aws.space import NUM_OPERATIONS
from augssl.search.aws.training_step import PairAugment, pair_step

VALIDATION_BATCH_SIZE = 512
_SUB_POLICY_STREAM = 1  # keeps the draw of an evaluation's sub-policies apart from its training


class EvaluationTask(NamedTuple):
    loop: int  # 1-based search loop
    index: int  # 1-based evaluation within the loop


class EvaluationResult(NamedTuple):
    loop: int
    index: int
    reward: float
    accuracies: list[float]  # validation accuracy after each fine-tuning epoch
    pair_counts: torch.Tensor  # (36, 36) int64 on the CPU: the pairs the images received
    # (36, 36) int64: the pairs drawn from the policy, which its PPO update credits; the images'
    # own pairs, or the evaluation's sub-policies (`sub_policies_per_evaluation`)
    drawn_pairs: torch.Tensor
    weight_shift: float  # |w_copy - w_shared| / |w_shared| over the parameters
    seconds: float


def validation_batches(session: Session):
    """The held-out images the rewards are measured on, never augmented."""
    return session.batches(session.bundle.train, session.splits.validation,
                           VALIDATION_BATCH_SIZE, train=False)[0]


def relative_change(changed: torch.nn.Module, reference: torch.nn.Module) -> float:
    with torch.no_grad():
        pairs = list(zip(changed.parameters(), reference.parameters()))
        delta = torch.stack([(a - b).float().pow(2).sum() for a, b in pairs]).sum()
        norm = torch.stack([b.float().pow(2).sum() for _, b in pairs]).sum()
    return math.sqrt(float(delta) / max(float(norm), 1e-30))


def evaluation_threads(config) -> int:
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
        # every epoch ends with the loss check and the measurement on the validation split; the
        # loop's tracker is off: an evaluation logs through its child run, and saves nothing
        self.loop_config = dataclasses.replace(c, eval_every=1, log_every=epoch_length,
                                               checkpoint_every=epoch_length)

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
        drawn = self._sub_policies(joint, task)
        with torch.random.fork_rng(devices=devices), intra_op_threads(self.threads):
            torch.manual_seed(derived_seed(self.session.config.seed, task.loop, task.index))
            fork = fork_model(self.shared_model, self._optimizer_on)
            policy = joint if drawn is None else drawn.double() / drawn.sum()
            accuracies, counts = self._fine_tune(fork, PairPolicyTransform(policy), task)
        return EvaluationResult(task.loop, task.index, best_mean_reward(accuracies), accuracies,
                                counts, counts if drawn is None else drawn,
                                relative_change(fork.model, self.shared_model),
                                time.perf_counter() - start)

    def _sub_policies(self, joint: torch.Tensor, task: EvaluationTask) -> torch.Tensor | None:
        """The pairs this evaluation fine-tunes with, drawn from the policy, when it tests a
        policy of a few sub-policies (None: each image draws from the whole policy)."""
        count = self.session.config.sub_policies_per_evaluation
        if not count:
            return None
        generator = torch.Generator().manual_seed(
            derived_seed(self.session.config.seed, task.loop, task.index, _SUB_POLICY_STREAM))
        return draw_sub_policies(joint, count, generator)

    def _fine_tune(self, fork: ForkedModel, transform: PairPolicyTransform,
                   task: EvaluationTask):
        """The copy trains along the schedule's last ``finetune_epochs``; returns the validation
        accuracy after each epoch and the (36, 36) counts of the pairs the images received."""
        c, session = self.session.config, self.session
        stream = (task.loop - 1) * c.evaluations_per_loop + task.index  # 0 is stage 1's
        batches, _ = session.batches(session.bundle.train, session.splits.labelled,
                                     c.batch_size, train=True, stream=stream)
        counts = torch.zeros(NUM_OPERATIONS, NUM_OPERATIONS, dtype=torch.int64,
                             device=session.device)
        precision = Precision(c.amp, session.device)
        step = pair_step(fork.model, fork.optimizer, precision, self.augment, transform,
                         self.prepare, c.label_smoothing, stream=stream, first_step=0,
                         on_batch=lambda batch: counts.add_(pair_counts(batch.first,
                                                                        batch.second)))
        loop = TrainingLoop(
            config=self.loop_config, trainer=Engine(step), model=fork.model,
            optimizer=fork.optimizer,
            scheduler=build_scheduler(c, fork.optimizer, self.total_steps,
                                      first_step=self.stage1_steps),
            precision=precision, tracker=RunTracker(enabled=False),
            class_names=session.bundle.classes, prepare_eval=self.prepare,
            eval_splits={"validation": self.validation})
        loop.attach()
        try:
            loop.run(cycle(batches), c.finetune_epochs, self.epoch_length)
        except NonFiniteLossError:
            raise NonFiniteLossError(
                f"the fine-tuning loss of evaluation {task.index} of search loop {task.loop} "
                "became NaN or infinite; lower learning_rate or turn amp off. The search "
                "resumes from its last finished loop with resume=<run id>.") from None
        return loop.accuracy_history["validation"], counts.cpu()
