"""FixMatch (Sohn et al., NeurIPS 2020, arXiv 2001.07685).

Each step: a labelled batch (weak augmentation: flip and crop) with cross-entropy, and mu times as
many unlabelled images seen twice: a weak view whose confident predictions (top probability at
least `threshold`) become hard pseudo-labels, and a strong view (RandAugment + Cutout) trained
on them. Loss = supervised + lambda_u * masked pseudo-label cross-entropy. The defaults are those
of the reference implementation (kekmodel/FixMatch-pytorch): batch 64, mu 7, SGD Nesterov lr 0.03,
weight decay 5e-4 on the weights only, lr * cos(7 pi k / 16 K), EMA 0.999 for evaluation,
2^20 steps evaluated every 1024.

    python code/fixmatch.py CIFAR10 wideresnet --params "num_epochs=100;threshold=0.95"

Departures from the reference, on purpose:
- The views are made on the device by the project's augmentations (augment_on=device), drawn
  from (seed, step, view): resumable. The strong view is the project's RandAugment (two ops at the
  fixed `randaugment_magnitude`, always applied) then Cutout in the data set's mean colour; the
  reference applies each of its two ops with probability 1/2 at a random magnitude, then a grey
  16 px Cutout.
- The EMA warms up as min(decay, (1 + n) / (10 + n)) (augssl.engine.ema); the reference uses
  the plain decay from the first step.
- 5000 training images are held out for validation (num_validation_samples) and pick the best
  model; the reference trains on the whole training set and reports the test accuracy.
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
from augssl.engine.config import LR_SCHEDULES, TrainingConfig
from augssl.engine.entry import launch
from augssl.engine.fit import fit
from augssl.engine.optim import build_optimizer, build_scheduler, weight_decay_groups
from augssl.engine.outputs import augmented_examples
from augssl.engine.session import open_session
from augssl.semisup.fixmatch import pseudo_label_accuracy, pseudo_label_loss
from augssl.semisup.views import forward_views

ENTRY = "fixmatch"

# The view streams of one step: each draws its own augmentation randomness.
LABELLED, WEAK, STRONG = range(3)


@dataclass(frozen=True)
class FixmatchConfig(TrainingConfig):
    batch_size: int = spec(64, "labelled images per step, summed over all processes", min=1)
    mu: int = spec(7, "unlabelled images per labelled image: mu * batch_size per step, each "
                   "seen twice", min=1)
    num_epochs: int = spec(1024, "epochs of epoch_length steps (the reference: 2^20 steps)",
                           min=1)
    epoch_length: int = spec(1024, "iterations per epoch, between evaluations (the reference's "
                             "eval_step); 0: one pass over the labelled set", min=0)
    learning_rate: float = spec(0.03, "peak learning rate", min=0.0)
    lr_schedule: str = spec("cosine_7_16", "per-iteration learning-rate schedule",
                            choices=LR_SCHEDULES)
    ema_decay: float = spec(0.999, "parameter EMA decay; evaluation uses the EMA weights; 0 "
                            "disables it", min=0.0, max=1.0)
    num_labelled_samples: int = spec(4000, "labelled training images, stratified; -1: all",
                                     min=-1)
    policy: str = spec("weak", "augmentation of the labelled images and of the weak view",
                       choices=POLICY_NAMES)
    strong_policy: str = spec("randaugment", "augmentation of the strong view",
                              choices=POLICY_NAMES)
    threshold: float = spec(0.95, "a weak prediction at least this confident becomes a "
                            "pseudo-label", min=0.0, max=1.0)
    lambda_u: float = spec(1.0, "weight of the unlabelled loss", min=0.0)
    T: float = spec(1.0, "softmax temperature of the weak prediction the threshold reads",
                    min=1e-3)


def make_fixmatch_step(model, optimizer, precision, config: FixmatchConfig, unlabelled,
                       prepare: dict):
    """The FixMatch step; ``prepare`` maps each view stream to its BatchPreparer (whose device
    augmentation is None when DataLoader workers made the views)."""

    def step(engine: Engine, batch) -> dict:
        model.train()
        t = engine.state.iteration
        images, targets, _ = batch
        # the unlabelled pool is training images with their labels hidden from the loss; the
        # labels only measure how often the pseudo-labels are right
        unlabelled_images, hidden_labels, _ = next(unlabelled)
        # [labelled, weak, strong] in one forward pass, one BatchNorm batch, as the reference;
        # its interleave only spreads that batch evenly over the GPUs of nn.DataParallel, and
        # here each process forwards its whole share of the three views at once
        views = [prepare[LABELLED](view(images, 0), t, LABELLED),
                 prepare[WEAK](view(unlabelled_images, 0), t, WEAK),
                 prepare[STRONG](view(unlabelled_images, 1), t, STRONG)]
        device = views[0].device
        targets = targets.to(device, non_blocking=True)
        with precision.autocast():
            labelled_logits, weak_logits, strong_logits = forward_views(model, views)
        supervised = F.cross_entropy(labelled_logits.float(), targets,
                                     label_smoothing=config.label_smoothing)
        unsupervised, mask, pseudo_labels = pseudo_label_loss(weak_logits, strong_logits,
                                                              config.threshold, config.T)
        total = supervised + config.lambda_u * unsupervised
        precision.backward_and_step(total, optimizer)
        accuracy = pseudo_label_accuracy(pseudo_labels,
                                         hidden_labels.to(device, non_blocking=True), mask)
        return {"loss": total.detach(), "supervised_loss": supervised.detach(),
                "unsupervised_loss": unsupervised.detach(), "mask_rate": mask.mean(),
                "pseudo_label_accuracy": accuracy}

    return step


@dataclass(frozen=True)
class FixmatchParts:
    trainer: Engine
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    labelled: object
    unlabelled: object
    strong: object  # the strong view's device augmentation (None on DataLoader workers)


def build_parts(session, config: FixmatchConfig) -> FixmatchParts:
    """The model, its optimiser, the batch streams and the engine running the FixMatch step."""
    model = session.create_model()
    optimizer = idist.auto_optim(build_optimizer(config, weight_decay_groups(model)))
    train = session.bundle.train
    labelled, (labelled_augment,) = session.batches(
        train, session.splits.labelled, config.batch_size, train=True, policies=(config.policy,))
    unlabelled, (weak, strong) = session.batches(
        train, session.splits.unlabelled, config.mu * config.batch_size, train=True,
        policies=(config.policy, config.strong_policy), stream=1)
    prepare = {LABELLED: session.preparer(labelled_augment), WEAK: session.preparer(weak),
               STRONG: session.preparer(strong)}
    trainer = Engine(make_fixmatch_step(model, optimizer, session.precision, config,
                                        cycle(unlabelled), prepare))
    return FixmatchParts(trainer, model, optimizer, labelled, unlabelled, strong)


def training(local_rank: int, config: FixmatchConfig) -> None:
    session = open_session(ENTRY, config)
    parts = build_parts(session, config)
    epoch_length = config.epoch_length or len(parts.labelled)
    scheduler = build_scheduler(config, parts.optimizer, config.num_epochs * epoch_length)
    fit(session, parts.trainer, model=parts.model, optimizer=parts.optimizer,
        scheduler=scheduler, data=parts.labelled, epoch_length=epoch_length,
        streams={"unlabelled": parts.unlabelled},
        examples=lambda: augmented_examples(parts.unlabelled, parts.strong,
                                            session.preparer().generator_for(0), session.device,
                                            view_index=1))


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    launch(ENTRY, FixmatchConfig, training)
