"""Unsupervised Data Augmentation (Xie et al., arXiv 1904.12848).

Each step: a labelled batch (weak augmentation + Cutout) with a TSA-annealed cross-entropy, and an
unlabelled batch seen twice, a clean view (the same weak augmentation) whose prediction is the
target and a strongly augmented view (AutoAugment/RandAugment + Cutout) pulled towards it.
Total loss = supervised + consistency_lambda * consistency. As in the official code, the three
views go through the network in one forward pass and the clean logits are detached.

    python code/main_uda.py CIFAR10 wideresnet --params "num_epochs=100;learning_rate=0.1"
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

from dataclasses import dataclass

import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.engine import Engine

from augssl.augment import POLICY_NAMES
from augssl.config import spec
from augssl.data.loaders import cycle, view
from augssl.engine.config import TrainingConfig
from augssl.engine.entry import launch
from augssl.engine.fit import fit
from augssl.engine.optim import build_optimizer, build_scheduler
from augssl.engine.outputs import augmented_examples
from augssl.engine.session import open_session
from augssl.semisup.consistency import CONSISTENCY_CRITERIA, consistency_loss, entropy
from augssl.semisup.tsa import TSA_SCHEDULES, annealed_cross_entropy, tsa_threshold
from augssl.semisup.views import forward_views

ENTRY = "main_uda"

# The view streams of one step: each draws its own augmentation randomness.
LABELLED, CLEAN, STRONG, LABELLED_STRONG = range(4)


@dataclass(frozen=True)
class UdaConfig(TrainingConfig):
    batch_size: int = spec(64, "labelled images per step, summed over all processes", min=1)
    unlabelled_batch_size: int = spec(320, "unlabelled images per step (each seen twice)", min=1)
    num_epochs: int = spec(200, "epochs (passes over the labelled set)", min=1)
    learning_rate: float = spec(0.03, "peak learning rate", min=0.0)
    weight_decay: float = spec(1e-4, "L2 weight decay", min=0.0)
    num_labelled_samples: int = spec(4000, "labelled training images, stratified; -1: all",
                                     min=-1)
    policy: str = spec("cutout", "augmentation of the labelled images and of the clean view",
                       choices=POLICY_NAMES)
    strong_policy: str = spec("autoaugment", "augmentation of the strong view",
                              choices=POLICY_NAMES)
    consistency_lambda: float = spec(1.0, "weight of the consistency loss", min=0.0)
    consistency_criterion: str = spec("KL", "KL(clean || strong) or MSE of the probabilities",
                                      choices=CONSISTENCY_CRITERIA)
    consistency_temperature: float = spec(1.0, "softmax temperature of the clean target "
                                          "(the paper's later version: 0.4)", min=1e-3,
                                          aliases=("uda_softmax_temp",))
    confidence_threshold: float = spec(0.0, "only clean predictions at least this confident "
                                       "count (paper: 0.8); 0: all", min=0.0, max=1.0,
                                       aliases=("uda_confidence_thresh",))
    entropy_weight: float = spec(0.0, "entropy minimisation on the clean view", min=0.0,
                                 aliases=("ent_min_coeff",))
    labelled_consistency: bool = spec(False, "also apply consistency to the labelled images "
                                      "(main_uda2)")
    with_TSA: bool = spec(True, "Training Signal Annealing of the supervised loss")
    TSA_schedule: str = spec("linear", "how the TSA threshold rises", choices=TSA_SCHEDULES)
    TSA_proba_min: float = spec(0.1, "TSA threshold at the start (the paper: 1/K)", min=0.0,
                                max=1.0)
    TSA_proba_max: float = spec(1.0, "TSA threshold at the end", min=0.0, max=1.0)

    def validate(self) -> None:
        super().validate()
        if self.TSA_proba_min > self.TSA_proba_max:
            from augssl.config import ConfigError

            raise ConfigError(f"TSA_proba_min={self.TSA_proba_min} is above TSA_proba_max="
                              f"{self.TSA_proba_max}: the threshold must rise over training.")


def supervised_loss(logits: torch.Tensor, targets: torch.Tensor, step: int, total_steps: int,
                    config: UdaConfig) -> tuple[torch.Tensor, float, torch.Tensor]:
    """(cross-entropy, TSA threshold, fraction of the labelled batch kept) at 0-based ``step``."""
    if not config.with_TSA:
        return F.cross_entropy(logits, targets), 1.0, torch.ones(())
    threshold = tsa_threshold(step, total_steps, config.TSA_schedule, config.TSA_proba_min,
                              config.TSA_proba_max)
    loss, kept = annealed_cross_entropy(logits, targets, threshold)
    return loss, threshold, kept


def make_uda_step(model, optimizer, precision, config: UdaConfig, unlabelled, prepare: dict,
                  total_steps: int):
    """The UDA step; ``prepare`` maps each view stream to its BatchPreparer (whose device
    augmentation is None when DataLoader workers made the views)."""

    def step(engine: Engine, batch) -> dict:
        model.train()
        t = engine.state.iteration
        images, targets, _ = batch
        unlabelled_images = next(unlabelled)[0]
        # view k is made here on the device, or was made by the DataLoader workers (cpu);
        # [labelled, clean, strong] is the official order
        views = [prepare[LABELLED](view(images, 0), t, LABELLED),
                 prepare[CLEAN](view(unlabelled_images, 0), t, CLEAN),
                 prepare[STRONG](view(unlabelled_images, 1), t, STRONG)]
        if config.labelled_consistency:
            views.append(prepare[LABELLED_STRONG](view(images, 1), t, LABELLED_STRONG))
        targets = targets.to(views[0].device, non_blocking=True)
        with precision.autocast():
            logits = forward_views(model, views)
        labelled_logits, clean_logits, strong_logits = logits[:3]
        supervised, threshold, kept = supervised_loss(labelled_logits.float(), targets, t - 1,
                                                      total_steps, config)
        options = dict(criterion=config.consistency_criterion,
                       temperature=config.consistency_temperature,
                       confidence_threshold=config.confidence_threshold)
        # the targets are detached (the official stop_gradient): no gradient reaches them
        consistency, mask_rate = consistency_loss(clean_logits.detach(), strong_logits, **options)
        if config.labelled_consistency:
            # the labelled images' weak view is their clean view; its logits are the target
            consistency = consistency + consistency_loss(labelled_logits.detach(), logits[3],
                                                         **options)[0]
        total = supervised + config.consistency_lambda * consistency
        if config.entropy_weight > 0:
            # as the official code: the clean view's entropy, with its gradient
            total = total + config.entropy_weight * entropy(clean_logits)
        precision.backward_and_step(total, optimizer)
        return {"loss": total.detach(), "supervised_loss": supervised.detach(),
                "consistency_loss": consistency.detach(), "tsa_threshold": threshold,
                "tsa_kept_fraction": kept, "mask_rate": mask_rate}

    return step


def training(local_rank: int, config: UdaConfig, entry: str = ENTRY) -> None:
    session = open_session(entry, config)
    model = session.create_model()
    optimizer = idist.auto_optim(build_optimizer(config, model.parameters()))
    train = session.bundle.train
    views = (config.policy, config.strong_policy)
    labelled, labelled_augments = session.batches(
        train, session.splits.labelled, config.batch_size, train=True,
        policies=views if config.labelled_consistency else views[:1])
    unlabelled, (clean, strong) = session.batches(
        train, session.splits.unlabelled, config.unlabelled_batch_size, train=True,
        policies=views, stream=1)
    epoch_length = config.epoch_length or len(labelled)
    total_steps = config.num_epochs * epoch_length
    scheduler = build_scheduler(config, optimizer, total_steps)
    prepare = {LABELLED: session.preparer(labelled_augments[0]), CLEAN: session.preparer(clean),
               STRONG: session.preparer(strong),
               LABELLED_STRONG: session.preparer(labelled_augments[-1])}
    trainer = Engine(make_uda_step(model, optimizer, session.precision, config, cycle(unlabelled),
                                   prepare, total_steps))
    fit(session, trainer, model=model, optimizer=optimizer, scheduler=scheduler,
        data=labelled, epoch_length=epoch_length, streams={"unlabelled": unlabelled},
        examples=lambda: augmented_examples(unlabelled, strong,
                                            session.preparer().generator_for(0), session.device,
                                            view_index=1))


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    launch(ENTRY, UdaConfig, training)
