"""RealMix (Nair et al., arXiv 1912.08766): MixUp + sharpened label guessing + consistency +
out-of-distribution masking, trained with Adam, decoupled weight decay and an EMA of the weights.

Each step: a labelled batch x (one augmentation) and an unlabelled batch u seen in `nu` augmented
views (taken from cached augmented copies when aug_copy > 0). The label guess q averages the
softmax over the views and is sharpened with temperature T. MixUp mixes the whole set [x, u_1..u_nu]
with targets [onehot(y), q..q], each sample with its own lambda; the loss is soft cross-entropy on
the mixed labelled part plus w_match (ramped up) times the squared error on the mixed unlabelled
part, over the unlabelled samples kept by the confidence mask (percent_mask), which ranks the
model's predictions on the mixed unlabelled images.

    python code/realmix.py cifar10.3@250-500 wideresnet --params "w_match=75;beta=0.75"
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import re
import statistics
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import ignite.distributed as idist
import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine

from augssl.augment import POLICY_NAMES
from augssl.config import ConfigError, spec
from augssl.data.aug_copies import augmented_copies, sample_views
from augssl.data.class_subsets import subset_bundle, unlabelled_pool
from augssl.data.loaders import DeviceBatches, cycle, derived_seed, view
from augssl.engine.config import TrainingConfig
from augssl.engine.entry import launch
from augssl.engine.fit import fit
from augssl.engine.optim import build_optimizer, build_scheduler
from augssl.engine.outputs import augmented_examples
from augssl.engine.session import open_session
from augssl.semisup.mixmatch import (
    confidence_mask,
    decay_weights,
    forward_interleaved,
    frozen_batchnorm_statistics,
    guess_labels,
    masked_squared_error,
    mixup,
    mixup_lambdas,
    ramp,
    soft_cross_entropy,
)
from augssl.semisup.tsa import tsa_threshold

ENTRY = "realmix"
# the original's supervised baselines, trained like realmix on the labelled images alone:
# name -> whether MixUp mixes the labelled batch
SUPERVISED_METHODS = {"fs_baseline": False, "fs_mixup": True}
ROOT = Path(__file__).resolve().parents[1]
# the original's augmentation names, as this project's policies
AUGMENT_NAMES = {"cifar10": "weak", "svhn": "weak", "stl10": "weak", "cutout": "cutout",
                 **{name: name for name in POLICY_NAMES}}
TSA_NAMES = {"none": None, "linear_schedule": "linear", "log_schedule": "log",
             "exp_schedule": "exp"}
# cifar10.3@250-500: seed 3, 250 labels, 500 validation; cifar10_aug50.3@250: 50 copies
SPLIT_NAME = re.compile(r"^(?P<name>[A-Za-z0-9]+?)(?:_aug(?P<copies>\d+))?\.(?P<seed>\d+)"
                        r"@(?P<labels>\d+)(?:-(?P<validation>\d+))?$")


@dataclass(frozen=True)
class RealmixConfig(TrainingConfig):
    batch_size: int = spec(64, "labelled images per step, summed over all processes", min=1)
    unlabelled_batch_size: int = spec(0, "unlabelled images per step (each seen nu times); 0: "
                                      "batch_size, as the original draws them", min=0)
    num_labelled_samples: int = spec(250, "labelled training images, stratified; -1: all",
                                     min=-1)
    num_validation_samples: int = spec(500, "images held out of train for validation", min=0)
    num_epochs: int = spec(64, "epochs of epoch_length steps (default: 1024 steps)", min=1)
    epoch_length: int = spec(1024, "iterations per epoch; 0: one pass over the labelled set",
                             min=0)
    optimizer: str = spec("adam", "optimiser", choices=("sgd", "adam"))
    learning_rate: float = spec(0.002, "Adam learning rate", min=0.0, aliases=("lr",))
    weight_decay: float = spec(0.0, "L2 weight decay inside the optimiser (RealMix uses wd)",
                               min=0.0)
    wd: float = spec(0.02, "decoupled weight decay: weights *= 1 - wd * lr after every step",
                     min=0.0)
    lr_schedule: str = spec("constant", "learning-rate schedule", choices=("cosine", "constant"))
    ema_decay: float = spec(0.999, "parameter EMA; evaluation uses the EMA weights", min=0.0,
                            max=1.0, aliases=("ema",))
    policy: str = spec("cifar10", "augmentation of the labelled images and of every "
                       "unlabelled view (the original's --augment)", choices=tuple(AUGMENT_NAMES),
                       aliases=("augment",))
    beta: float = spec(0.75, "MixUp: lambda ~ Beta(beta, beta)", min=1e-3)
    T: float = spec(0.5, "sharpening temperature of the label guess", min=1e-3, max=1.0)
    nu: int = spec(2, "augmented views of each unlabelled image", min=1)
    w_match: float = spec(75.0, "weight of the unlabelled loss", min=0.0)
    # A quarter of the run: on the default budget (65536 steps of 64) that is the original's
    # ramp in images (1024 kimg = 16384 steps), and it shrinks with shorter runs without
    # vanishing. The original's fraction, 1/64 (1024 of 65536 kimg; the preset
    # realmix_paper_schedule), gives a 600-step run 9 steps, after which w_match = 75 weighs
    # the untrained model's guesses in full: that collapsed a short run.
    w_match_rampup: float = spec(0.25, "fraction of training over which w_match ramps up "
                                 "linearly from 0 (the original: 1/64)", min=0.0, max=1.0)
    percent_mask: float = spec(0.0, "fraction of the least confident unlabelled images left out "
                               "of the unlabelled loss (out-of-distribution masking)",
                               min=0.0, max=0.99)
    tsa: str = spec("none", "TSA on the labelled loss", choices=tuple(TSA_NAMES))
    aug_copy: int = spec(0, "augmented copies of the unlabelled set made once and cached (the "
                         "original's make_aug_copy); 0: augment on the fly", min=0)
    copy_augment: str = spec("cutout", "augmentation of the cached copies",
                             choices=tuple(AUGMENT_NAMES))
    cache_dir: str = spec("", "where augmented copies are cached; empty: input/cache")
    filters: int = spec(32, "Wide-ResNet base width in filters (32: WRN-28-2)", min=16)
    labelled_classes: tuple[int, ...] = spec((), "classes of the labelled, validation and "
                                             "test sets; empty: all")
    unlabelled_classes: tuple[int, ...] = spec((), "classes the unlabelled images come from; "
                                               "empty: the labelled classes")
    median_of_last: int = spec(20, "the final metric: median test accuracy of the last N "
                               "evaluations", min=1)

    @property
    def unlabelled_images_per_step(self) -> int:
        return self.unlabelled_batch_size or self.batch_size

    def validate(self) -> None:
        super().validate()
        if self.aug_copy and self.aug_copy < self.nu:
            raise ConfigError(f"aug_copy={self.aug_copy} is fewer than nu={self.nu}: every view "
                              f"of an image takes a different copy; use aug_copy >= {self.nu}.")


def expand_split_name(argv: list[str]) -> list[str]:
    """`cifar10.3@250-500` as the data set: the name, plus seed and split sizes as params."""
    if not argv or not (match := SPLIT_NAME.match(argv[0])):
        return argv
    extra = {"seed": match["seed"], "num_labelled_samples": match["labels"]}
    if match["validation"]:
        extra["num_validation_samples"] = match["validation"]
    if match["copies"]:
        extra["aug_copy"] = match["copies"]
    args = list(argv)
    args[0] = match["name"]
    given = args[args.index("--params") + 1] if "--params" in args else ""
    pieces = ";".join(f"{k}={v}" for k, v in extra.items())
    if "--params" in args:
        args[args.index("--params") + 1] = f"{pieces};{given}"
    else:
        args += ["--params", pieces]
    return args


class CopyViews:
    """Stands in for an image tensor in DeviceBatches: indexing with positions gives, for each
    position, `nu` different cached copies as a B x nu x C x H x W uint8 batch."""

    device = torch.device("cpu")

    def __init__(self, copies: np.ndarray, nu: int, seed: int):
        self.copies, self.nu, self.seed = copies, nu, seed

    def __getitem__(self, positions: torch.Tensor) -> torch.Tensor:
        positions = positions.numpy()
        # the choice depends only on the batch: a resumed run draws the same copies
        rng = np.random.default_rng(derived_seed(self.seed, int(positions[0]),
                                                 int(positions.sum())))
        views = sample_views(self.copies, positions, self.nu, rng)
        return torch.from_numpy(np.ascontiguousarray(views)).permute(1, 0, 4, 2, 3)


def mixup_draw(config: RealmixConfig, step: int, count: int, device
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp's lambda of each of ``count`` samples and their partner order for ``step`` (realmix
    and fs_mixup alike): drawn from (seed, step) alone, so that a resumed run mixes as the
    uninterrupted one did."""
    rng = np.random.default_rng(derived_seed(config.seed, step))
    lam = torch.from_numpy(mixup_lambdas(config.beta, count, rng)).float()
    return lam.to(device), torch.from_numpy(rng.permutation(count)).to(device)


def make_realmix_step(model, optimizer, precision, config: RealmixConfig, unlabelled,
                      prepare, total_steps: int, num_classes: int):
    ramp_steps = int(config.w_match_rampup * total_steps)
    tsa_schedule = TSA_NAMES[config.tsa]

    def step(engine: Engine, batch) -> dict:
        model.train()
        t = engine.state.iteration
        images, targets, _ = batch
        unlabelled_images = next(unlabelled)[0]
        x = prepare(images, t, 0)
        views = [prepare(view(unlabelled_images, v), t, 1 + v) for v in range(config.nu)]
        targets = targets.to(x.device, non_blocking=True)
        # as the original's guess_label: each view its own forward pass in training mode, whose
        # BatchNorm updates are skipped
        with precision.autocast(), torch.no_grad(), frozen_batchnorm_statistics(model):
            guess = guess_labels([model(v) for v in views], config.T)
        inputs = torch.cat([x] + views)
        soft_targets = torch.cat([F.one_hot(targets, num_classes).float()] + [guess] * config.nu)
        lam, order = mixup_draw(config, t, len(inputs), inputs.device)
        mixed, mixed_targets = mixup(inputs, soft_targets, lam, order)
        labelled_count = len(x)
        # as the original's interleave: 1 + nu forward passes, each a mix of labelled and
        # unlabelled samples; the first one updates BatchNorm's running statistics
        with precision.autocast():
            logits = forward_interleaved(model, mixed, 1 + config.nu)
        labelled_logits, unlabelled_logits = logits[:labelled_count], logits[labelled_count:]
        per_sample = soft_cross_entropy(labelled_logits, mixed_targets[:labelled_count])
        threshold, keep = 1.0, torch.ones_like(per_sample)
        if tsa_schedule is not None:
            threshold = tsa_threshold(t - 1, total_steps, tsa_schedule, 1 / num_classes, 1.0)
            with torch.no_grad():
                probability = torch.softmax(labelled_logits.float(), 1).gather(
                    1, targets[:, None])[:, 0]
                keep = (probability <= threshold).float()
        labelled_loss = (per_sample * keep).sum() / keep.sum().clamp(min=1.0)
        # as the original's percent_confidence_mask_unsup: rank the model's predictions on the
        # mixed unlabelled images (all nu views together), not the guesses
        mask = confidence_mask(torch.softmax(unlabelled_logits.detach().float(), dim=1),
                               config.percent_mask)
        unlabelled_loss = masked_squared_error(unlabelled_logits, mixed_targets[labelled_count:],
                                               mask)
        weight = config.w_match * ramp(t, ramp_steps)
        loss = labelled_loss + weight * unlabelled_loss
        precision.backward_and_step(loss, optimizer)
        decay_weights(model, 1.0 - config.wd * optimizer.param_groups[0]["lr"])
        return {"loss": loss.detach(), "labelled_loss": labelled_loss.detach(),
                "unlabelled_loss": unlabelled_loss.detach(), "w_match": weight,
                "tsa_threshold": threshold, "tsa_kept_fraction": keep.mean(),
                "mask_rate": mask.mean(), "mixup_lambda": lam.mean()}

    return step


def make_supervised_step(model, optimizer, precision, config: RealmixConfig, prepare,
                         num_classes: int, mix: bool):
    """The original's fs_baseline (mix=False) and fs_mixup (mix=True): the labelled batch alone,
    with RealMix's augmentation, optimiser, decoupled weight decay and EMA. fs_mixup draws like
    realmix (a lambda per sample); its partner is a random one where the original's fs_mixup
    takes the reversed batch: on a shuffled batch either is a random partner."""

    def step(engine: Engine, batch) -> dict:
        model.train()
        t = engine.state.iteration
        images, targets, _ = batch
        x = prepare(images, t, 0)
        soft_targets = F.one_hot(targets.to(x.device, non_blocking=True), num_classes).float()
        metrics = {}
        if mix:
            lam, order = mixup_draw(config, t, len(x), x.device)
            x, soft_targets = mixup(x, soft_targets, lam, order)
            metrics["mixup_lambda"] = lam.mean()
        with precision.autocast():
            logits = model(x)
        loss = soft_cross_entropy(logits, soft_targets).mean()
        precision.backward_and_step(loss, optimizer)
        decay_weights(model, 1.0 - config.wd * optimizer.param_groups[0]["lr"])
        return {"loss": loss.detach(), **metrics}

    return step


def _unlabelled_batches(session, config: RealmixConfig, policy: str):
    """Batches of `nu` views of the unlabelled pool: the unlabelled classes, without the images
    held out for validation, plus the data set's own unlabelled images (a custom folder's
    unlabeled/); from cached augmented copies when aug_copy > 0."""
    keep = config.labelled_classes
    source = session.source_bundle
    labelled_rows = (np.flatnonzero(np.isin(source.train.targets, keep)) if keep
                     else np.arange(len(source.train)))
    held_out = labelled_rows[session.splits.validation]
    unlabelled_classes = config.unlabelled_classes or keep or tuple(range(len(source.classes)))
    pool = unlabelled_pool(source, unlabelled_classes, exclude=held_out)
    if not config.aug_copy:
        batches, _ = session.batches(pool, np.arange(len(pool)), config.unlabelled_images_per_step,
                                     train=True, policies=(policy,) * config.nu, stream=1)
        return batches
    if not pool.in_memory:
        raise ConfigError(f"aug_copy={config.aug_copy}: cached copies are made of data sets held "
                          f"in memory, and {config.dataset} is read from image files. Use "
                          "aug_copy=0: the views are then augmented on the fly.")
    copies = augmented_copies(
        pool.images, AUGMENT_NAMES[config.copy_augment], session.augment_spec(),
        config.aug_copy, config.seed,
        Path(config.cache_dir) if config.cache_dir else ROOT / "input" / "cache",
        session.device)
    return DeviceBatches(CopyViews(copies, config.nu, config.seed),
                         torch.full((len(pool),), -1), np.arange(len(pool)),
                         max(1, config.unlabelled_images_per_step // session.world_size),
                         shuffle=True, drop_last=True, seed=config.seed, stream=1,
                         rank=session.rank, world_size=session.world_size)


def select_labelled_classes(config: RealmixConfig, bundle):
    """The data set restricted to ``labelled_classes`` (all of it when empty)."""
    return subset_bundle(bundle, config.labelled_classes) if config.labelled_classes else bundle


def training(local_rank: int, config: RealmixConfig, method: str = ENTRY) -> None:
    """Train by ``method``: realmix, or one of its supervised baselines (SUPERVISED_METHODS)."""
    session = open_session(method, config, select=select_labelled_classes)
    network_options = ({"width": config.filters // 16} if config.network == "wideresnet"
                       else {})
    model = session.create_model(**network_options)
    optimizer = idist.auto_optim(build_optimizer(config, model.parameters()))
    policy = AUGMENT_NAMES[config.policy]
    labelled, (augment,) = session.batches(session.bundle.train, session.splits.labelled,
                                           config.batch_size, train=True, policies=(policy,))
    epoch_length = config.epoch_length or len(labelled)
    total_steps = config.num_epochs * epoch_length
    scheduler = build_scheduler(config, optimizer, total_steps)
    prepare = session.preparer(augment)
    streams = {}
    if method == ENTRY:
        unlabelled = _unlabelled_batches(session, config, policy)
        streams["unlabelled"] = unlabelled
        step = make_realmix_step(model, optimizer, session.precision, config, cycle(unlabelled),
                                 prepare, total_steps, session.num_classes)
    else:
        step = make_supervised_step(model, optimizer, session.precision, config, prepare,
                                    session.num_classes, mix=SUPERVISED_METHODS[method])
    trainer = Engine(step)

    def final_metrics(loop) -> dict[str, float]:
        recent = loop.accuracy_history["test"][-config.median_of_last:]
        return {f"test/accuracy_median_last{config.median_of_last}": statistics.median(recent)}

    fit(session, trainer, model=model, optimizer=optimizer, scheduler=scheduler,
        data=labelled, epoch_length=epoch_length, streams=streams,
        final_metrics=final_metrics,
        examples=lambda: augmented_examples(labelled, augment,
                                            session.preparer().generator_for(0), session.device))


def main(method: str) -> None:
    """The command line of ``method``: realmix or one of its baselines, under its own name."""
    launch(method, RealmixConfig, partial(training, method=method),
           argv=expand_split_name(sys.argv[1:]), select=select_labelled_classes)


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main(ENTRY)
