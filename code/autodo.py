r"""AutoDO (Gudovskiy et al., CVPR 2021): learned augmentation and loss for biased training data.

The training set is biased first (imbalance ratio ``ir``, label noise ratio ``nr``, drawn from
``seed`` and ``run``); a clean, class-balanced validation split is held out before and is never
biased. Then one of the original's configurations trains on it:

- baselines: ``aug_model`` NONE (no augmentation), RAND (RandAugment), AUTO (AutoAugment with the
  data set's published policy: the original used the policy Fast AutoAugment found instead);
  DADA is refused, no DADA policy being available here;
- AutoDO: ``aug_model`` SHA or SEP (learned affine augmentation, one parameter set or one per
  image) and/or ``loss_model`` WGHT, SOFT or BOTH (learned per-image weights, soft labels),
  learned with ``hyper_opt=HES``: after ``warm_epochs`` epochs, every epoch runs a hyper pass
  (the network held fixed, one implicit hyper-gradient step on the tables per training batch,
  against a clean validation batch) and then its training pass (the network trained through the
  tables), as the original's epoch loop does.

Every configuration thus trains the network for ``num_epochs`` passes, the same number of steps
(logged as ``train/network_steps``); MLflow steps count network steps, and the learning-rate
schedule runs over them alone. The best model is chosen on the clean validation split; the test
split is only reported.

    python code/autodo.py SVHN wideresnet \
        --params "ir=100;nr=0.1;run=0;aug_model=SEP;loss_model=BOTH;hyper_opt=HES"

Logged besides every entry's metrics: ``train/network_steps``, ``bias/*`` (the split's sizes and
noise), and after each hyper pass ``train/hyper_train_loss`` and ``train/hyper_val_loss`` (means
over the pass), ``learned_augment/<op>_{probability,magnitude}``
(means over the table's rows) and, with learned weights, ``noisy_weight_auc``: the ROC AUC of
the weights scoring clean against noisy labels (1: every noisy image weighs less than every
clean one; 0.5: no separation) and ``noisy_weight_auc_within_class``, the same within each
training label, averaged (under imbalance the noisy labels gather in the rare classes, and the
overall AUC also ranks classes). Artifacts besides every entry's: ``biased_split.npz`` (read it
with ``augssl.data.bias.load_biased_split``) and, when tables are learned,
``autodo_parameters.npz``, ``learned_weights.png`` (WGHT, BOTH) and ``learned_augmentation.png``
(SHA, SEP).
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

from dataclasses import dataclass

import ignite.distributed as idist
import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events

from augssl.augment import POLICY_NAMES
from augssl.config import ConfigError, spec
from augssl.data.bias import BiasedSplit, save_biased_split
from augssl.data.loaders import cycle, derived_seed
from augssl.data.splits import Splits
from augssl.data.streams import BatchStreams
from augssl.engine.config import TrainingConfig
from augssl.engine.entry import launch
from augssl.engine.fit import fit
from augssl.engine.optim import build_optimizer, build_scheduler
from augssl.engine.outputs import augmented_examples
from augssl.engine.session import open_session
from augssl.search.autodo import (
    AFFINE_OPS,
    DEFAULT_HYPER_LR,
    DEFAULT_NEUMANN_ALPHA,
    DEFAULT_NEUMANN_TERMS,
    LOSS_MODES,
    AffineAugment,
    HyperGradient,
    HyperOptimizer,
    LossModel,
    TrainingRows,
    augment_parameters,
    draw_biased_split,
    hyper_passes_due,
    network_hypergradient,
    noisy_weight_auc,
    noisy_weight_auc_within_class,
)

ENTRY = "autodo"

AUG_MODELS = ("NONE", "RAND", "AUTO", "DADA", "SHA", "SEP")
LEARNED_AUG_MODELS = ("SHA", "SEP")
HYPER_OPTS = ("NONE", "HES")
# The uint8 augmentation each aug_model stands for; SHA and SEP warp the normalised images later.
POLICY_OF = {"NONE": "none", "RAND": "randaugment", "AUTO": "autoaugment", "SHA": "none",
             "SEP": "none"}

BIASED_SPLIT_FILE = "biased_split.npz"
LEARNED_TABLES_FILE = "autodo_parameters.npz"

# Augmentation streams: a training step's uint8 policy draws from stream 0 and its learned warp
# from AFFINE_STREAM; a hyper step, numbered on its own, from the two after, so that the two
# kinds of step never share a draw.
AFFINE_STREAM = 1
HYPER_POLICY_STREAM = 2
HYPER_AFFINE_STREAM = 3
# Loader streams: the clean validation batches, and the training batches of the hyper passes in
# their own order (the original's hyper_loader).
VALIDATION_BATCHES = 1
HYPER_BATCHES = 2
# Keeps the initial weights of run r apart from every other use of the seed.
_RUN_WEIGHTS = 7


@dataclass(frozen=True)
class AutodoConfig(TrainingConfig):
    num_epochs: int = spec(200, "epochs, each one training pass of the network, after "
                           "warm_epochs preceded by a hyper pass (the original: 200)", min=1)
    num_validation_samples: int = spec(10000, "clean, class-balanced validation images held out "
                                       "before the bias (the original: 10000); best-model "
                                       "selection and the hyper steps use them", min=1)
    num_labelled_samples: int = spec(-1, "clean training images drawn class-balanced before the "
                                     "bias is imposed; -1: every non-validation image", min=-1)
    policy: str = spec("", "augmentation of the uint8 images; empty: the one aug_model stands "
                       "for (RAND: randaugment, AUTO: autoaugment, otherwise none)",
                       choices=("",) + POLICY_NAMES)
    imbalance_ratio: float = spec(1.0, "IR: the upper half of the classes keeps 1/IR of its "
                                  "images, pooled; 1: no imbalance", min=1.0, aliases=("ir",))
    noise_ratio: float = spec(0.0, "NR: fraction of the training labels redrawn uniformly from "
                              "all classes, in [0, 1)", min=0.0, aliases=("nr",))
    run: int = spec(0, "repeat number (the original's -r runN): with seed it draws the biased "
                    "split and the initial weights", min=0)
    aug_model: str = spec("NONE", "NONE, RAND (RandAugment), AUTO (AutoAugment), DADA (not "
                          "available), SHA or SEP (learned affine: shared, one set per image)",
                          choices=AUG_MODELS)
    loss_model: str = spec("NONE", "NONE (cross-entropy), WGHT (learned per-image weights), SOFT "
                           "(learned soft labels), BOTH", choices=LOSS_MODES,
                           aliases=("los_model",))
    hyper_opt: str = spec("NONE", "HES: learn the SHA/SEP augmentation and the loss model by "
                          "implicit hyper-gradients; NONE for the baselines", choices=HYPER_OPTS)
    hyper_terms: int = spec(DEFAULT_NEUMANN_TERMS, "Neumann series terms of the inverse Hessian",
                            min=0)
    hyper_alpha: float = spec(DEFAULT_NEUMANN_ALPHA, "Neumann series step, below 2 / the largest "
                              "Hessian eigenvalue", min=0.0)
    hyper_lr: float = spec(DEFAULT_HYPER_LR, "RMSprop learning rate of the learned tables",
                           min=0.0)
    warm_epochs: int = spec(50, "epochs without a hyper pass, at the start (the original: 50 "
                            "of 200)", min=0)

    def __post_init__(self) -> None:
        # resolved here so that the run's logged params name the augmentation actually used
        if not self.policy and self.aug_model in POLICY_OF:
            object.__setattr__(self, "policy", POLICY_OF[self.aug_model])

    def validate(self) -> None:
        super().validate()
        if self.noise_ratio >= 1:
            raise ConfigError(f"noise_ratio (nr) = {self.noise_ratio} is out of range: expected "
                              "0 <= nr < 1, the fraction of training labels redrawn at random "
                              "(nr=1 would leave no clean label to learn from), e.g. nr=0.1.")
        if self.aug_model == "DADA":
            raise ConfigError("aug_model=DADA is not available yet: no published DADA policy "
                              "is part of this project. Use AUTO (AutoAugment) or RAND "
                              "(RandAugment) as the searched-policy baseline.")
        implied = POLICY_OF[self.aug_model]
        if self.policy != implied:
            raise ConfigError(f"policy={self.policy!r} contradicts aug_model={self.aug_model}, "
                              f"which means policy={implied!r}: drop policy from params and "
                              "choose the augmentation with aug_model.")
        learns = self.aug_model in LEARNED_AUG_MODELS or self.loss_model != "NONE"
        if self.hyper_opt == "HES" and not learns:
            raise ConfigError(f"hyper_opt=HES has nothing to learn with aug_model="
                              f"{self.aug_model} and loss_model=NONE: set aug_model=SHA or SEP "
                              "and/or loss_model=WGHT, SOFT or BOTH, or hyper_opt=NONE.")
        if self.hyper_opt == "NONE" and learns:
            learned = [f"aug_model={self.aug_model}" if self.aug_model in LEARNED_AUG_MODELS
                       else "", f"loss_model={self.loss_model}" if self.loss_model != "NONE"
                       else ""]
            raise ConfigError(f"{' and '.join(filter(None, learned))} would stay at the initial "
                              "values: only hyper_opt=HES learns them. Add hyper_opt=HES, or "
                              "use aug_model NONE/RAND/AUTO with loss_model=NONE.")
        if self.hyper_opt == "HES":
            self._validate_hyper()
        if self.label_smoothing > 0 and self.hyper_opt == "HES":
            raise ConfigError(f"label_smoothing={self.label_smoothing} applies to the baselines' "
                              "cross-entropy only; with hyper_opt=HES the loss model sets the "
                              "targets (its soft labels start smoothed). Set label_smoothing=0.")

    def _validate_hyper(self) -> None:
        if self.warm_epochs >= self.num_epochs:
            raise ConfigError(f"warm_epochs={self.warm_epochs} leaves no hyper pass in "
                              f"num_epochs={self.num_epochs}: expected warm_epochs < "
                              "num_epochs (the original: 50 of 200).")
        if self.hyper_alpha <= 0 or self.hyper_lr <= 0:
            raise ConfigError(f"hyper_alpha={self.hyper_alpha} and hyper_lr={self.hyper_lr} must "
                              "both be > 0 (defaults 0.01 and 0.05).")
        if self.backend:
            raise ConfigError("hyper_opt=HES runs in one process: the learned tables are not "
                              "synchronised between processes. Drop backend and "
                              "nproc_per_node.")


def biased_split(config: AutodoConfig, bundle) -> BiasedSplit:
    pool = None if config.num_labelled_samples < 0 else config.num_labelled_samples
    return draw_biased_split(np.asarray(bundle.train.targets), len(bundle.classes),
                             config.num_validation_samples, pool, config.imbalance_ratio,
                             config.noise_ratio, config.data_split_seed, config.run)


def symmetric_soft_loss(config: AutodoConfig) -> bool:
    """The soft labels' divergence is symmetric on biased data (the original's
    ``symmetricKlEnable``: imbalance or label noise)."""
    return config.imbalance_ratio > 1 or config.noise_ratio > 0


def check_biased_split(config: AutodoConfig) -> None:
    """Before any run: the data set can give the split asked for (class sizes, IR)."""
    from augssl.engine.session import source_dataset

    biased_split(config, source_dataset(config))


@dataclass
class LearnedTables:
    """What hyper passes learn; ``augment`` is None for the baselines and NONE loss models
    have no table."""

    augment: AffineAugment | None
    loss_model: LossModel
    hyper_optimizer: HyperOptimizer | None

    @classmethod
    def build(cls, config: AutodoConfig, split: BiasedSplit, device) -> "LearnedTables":
        augment = None
        if config.aug_model in LEARNED_AUG_MODELS:
            augment = AffineAugment(config.aug_model, num_images=len(split)).to(device)
        loss_model = LossModel(config.loss_model, torch.as_tensor(split.train_targets),
                               split.num_classes, symmetric=symmetric_soft_loss(config)).to(device)
        tables = [*(augment.parameters() if augment is not None else ()),
                  *loss_model.parameters()]
        hyper_optimizer = (HyperOptimizer(tables, lr=config.hyper_lr)
                           if config.hyper_opt == "HES" else None)
        return cls(augment, loss_model, hyper_optimizer)

    def state_objects(self) -> dict:
        """The objects checkpoints carry so that a resumed run learns on from where it was."""
        objects = {"augment": self.augment, "hyper_optimizer": self.hyper_optimizer,
                   "loss_model": self.loss_model if self.loss_model.mode != "NONE" else None}
        return {name: obj for name, obj in objects.items() if obj is not None}


def make_autodo_step(model, optimizer, precision, prepare, rows: TrainingRows,
                     tables: LearnedTables, config: AutodoConfig):
    """One training step of the network through the (constant) tables (the original's
    ``innerTrain``); every engine iteration is one, so ``network_steps`` is the iteration.
    Loader targets are ignored: ``rows`` gives the biased set's labels."""
    augment, loss_model = tables.augment, tables.loss_model

    def step(engine: Engine, batch) -> dict:
        images, _, indices = batch
        t = engine.state.iteration
        model.train()
        positions, targets = rows(indices)
        inputs = prepare(images, t)
        if augment is not None:
            inputs = augment(inputs, positions, prepare.generator_for(t, AFFINE_STREAM))
        with precision.autocast():
            logits = model(inputs).float()
        if loss_model.mode == "NONE":
            loss = F.cross_entropy(logits, targets, label_smoothing=config.label_smoothing)
        else:
            loss = loss_model(logits, targets, positions)
        precision.backward_and_step(loss, optimizer)
        return {"loss": loss.detach(), "network_steps": t}

    return step


class HyperPass:
    """One pass of hyper-gradient steps over the training set, each against one clean
    validation batch (the original's ``hyperHesTrain``): only the tables move, the network is
    held fixed. Its draws follow the hyper steps taken so far (the hyper-optimiser's count) and
    its loaders' positions are in ``streams``: checkpoints carry both."""

    def __init__(self, model, prepare, prepare_validation, rows: TrainingRows,
                 tables: LearnedTables, train_batches, validation_batches, length: int,
                 config: AutodoConfig) -> None:
        self.model, self.rows, self.tables, self.config = model, rows, tables, config
        self.prepare, self.prepare_validation = prepare, prepare_validation
        self.length = length
        self._train, self._validation = cycle(train_batches), cycle(validation_batches)
        self.streams = BatchStreams({"train": train_batches, "validation": validation_batches},
                                    counted_by=("hyper_optimizer", "steps"))

    def pending(self, epoch: int) -> bool:
        """Whether ``epoch``'s hyper pass is still to run; a run resumed from a checkpoint inside
        the epoch's training pass has run it already."""
        due = hyper_passes_due(epoch, self.config.warm_epochs) * self.length
        return self.tables.hyper_optimizer.steps < due

    def run(self) -> dict[str, float]:
        """Run the pass; returns its mean training and validation losses."""
        # eval mode: BatchNorm statistics stay as the training pass left them, and the
        # validation images never reach the running statistics the evaluation uses
        self.model.eval()
        train_loss = val_loss = 0.0
        for _ in range(self.length):
            step = self._step()
            train_loss, val_loss = train_loss + step.train_loss, val_loss + step.val_loss
        return {"train/hyper_train_loss": train_loss / self.length,
                "train/hyper_val_loss": val_loss / self.length}

    def _step(self) -> HyperGradient:
        h = self.tables.hyper_optimizer.steps
        images, _, indices = next(self._train)
        val_images, val_targets, _ = next(self._validation)
        positions, targets = self.rows(indices)
        inputs = self.prepare(images, h, HYPER_POLICY_STREAM)
        val_inputs = self.prepare_validation(val_images)
        step = network_hypergradient(
            self.model, self.tables.augment, self.tables.loss_model, inputs, targets, positions,
            val_inputs, val_targets.to(val_inputs.device),
            self.prepare.generator_for(h, HYPER_AFFINE_STREAM),
            terms=self.config.hyper_terms, alpha=self.config.hyper_alpha)
        self.tables.hyper_optimizer.step(step.slices, step.grads)
        return step


def learned_tables_summary(tables: LearnedTables, split: BiasedSplit) -> dict[str, float]:
    """Metrics of the tables as they are: weight separation of noisy labels, mean augmentation."""
    metrics = {}
    if tables.loss_model.weight_logits is not None:
        weights = tables.loss_model.weights().cpu().numpy()
        auc = noisy_weight_auc(weights, split.is_noisy)
        if auc is not None:
            metrics["noisy_weight_auc"] = auc
            metrics["noisy_weight_auc_within_class"] = noisy_weight_auc_within_class(
                weights, split.is_noisy, split.train_targets)
            metrics["learned_weight/noisy_mean"] = float(weights[split.is_noisy].mean())
            metrics["learned_weight/clean_mean"] = float(weights[~split.is_noisy].mean())
    if tables.augment is not None:
        probability, magnitude = augment_parameters(tables.augment)
        for k, name in enumerate(AFFINE_OPS):
            metrics[f"learned_augment/{name}_probability"] = float(probability[:, k].mean())
            metrics[f"learned_augment/{name}_magnitude"] = float(magnitude[:, k].mean())
    return metrics


def log_weight_histograms(tables: LearnedTables, split: BiasedSplit, tracker, step: int) -> None:
    """The learned per-image weights of clean and of noisy labels as TensorBoard histograms,
    one pair per hyper pass: how they part over training."""
    if tables.loss_model.weight_logits is None:
        return
    weights = tables.loss_model.weights().cpu().numpy()
    tracker.log_histogram("learned_weight/clean", weights[~split.is_noisy], step)
    if split.is_noisy.any():
        tracker.log_histogram("learned_weight/noisy", weights[split.is_noisy], step)


def write_learned_tables(tables: LearnedTables, split: BiasedSplit, tracker) -> None:
    """The final tables as ``autodo_parameters.npz`` and their figures."""
    from augssl.search.autodo.figures import plot_augment_parameters, plot_weight_histogram

    arrays = {}
    if tables.loss_model.weight_logits is not None:
        weights = tables.loss_model.weights().cpu().numpy()
        arrays["weights"] = weights
        tracker.log_figure(plot_weight_histogram(weights, split.is_noisy,
                                                 noisy_weight_auc(weights, split.is_noisy)),
                           "learned_weights.png")
    soft_labels = tables.loss_model.soft_labels()
    if soft_labels is not None:
        arrays["soft_labels"] = soft_labels.cpu().numpy()
    if tables.augment is not None:
        probability, magnitude = augment_parameters(tables.augment)
        arrays.update(augment_table=tables.augment.table.detach().float().cpu().numpy(),
                      augment_probability=probability, augment_magnitude=magnitude,
                      augment_ops=np.array(AFFINE_OPS))
        tracker.log_figure(plot_augment_parameters(probability, magnitude, tables.augment.mode),
                           "learned_augmentation.png")
    np.savez(tracker.path(LEARNED_TABLES_FILE), **arrays)


def attach_autodo_outputs(trainer: Engine, tracker, split: BiasedSplit,
                          tables: LearnedTables) -> None:
    """The biased split when the run starts and the learned tables' files when training ends."""

    @trainer.on(Events.STARTED)
    def save_split(engine: Engine) -> None:
        if not tracker.enabled:
            return
        save_biased_split(split, tracker.path(BIASED_SPLIT_FILE))
        tracker.publish(BIASED_SPLIT_FILE)
        if engine.state.iteration == 0:
            tracker.log_metrics({"bias/train_images": len(split),
                                 "bias/validation_images": len(split.validation_indices),
                                 "bias/noisy_fraction": float(split.is_noisy.mean())}, 0)

    if tables.hyper_optimizer is None:
        return

    @trainer.on(Events.COMPLETED)
    def save_tables(engine: Engine) -> None:
        if tracker.enabled:
            write_learned_tables(tables, split, tracker)


def attach_hyper_passes(trainer: Engine, hyper_pass: HyperPass, tracker,
                        split: BiasedSplit) -> None:
    """Each epoch's hyper pass before its training pass, then its losses and the tables' metrics
    (the only pass that changes them), logged at the network steps taken so far."""

    @trainer.on(Events.EPOCH_STARTED)
    def learn_tables(engine: Engine) -> None:
        if hyper_pass.pending(engine.state.epoch):
            losses = hyper_pass.run()
            tracker.log_metrics({**losses, **learned_tables_summary(hyper_pass.tables, split)},
                                engine.state.iteration)
            log_weight_histograms(hyper_pass.tables, split, tracker, engine.state.iteration)


def warped_examples(batches, prepare, augment: AffineAugment, rows: TrainingRows) -> torch.Tensor:
    """Up to 32 training images as the learned augmentation shows them to the model (uint8)."""
    images, _, indices = next(iter(batches))
    positions, _ = rows(indices[:32])
    warped = augment(prepare(images[:32]), positions, prepare.generator_for(0, AFFINE_STREAM))
    return (warped / prepare.inv_std + prepare.mean).round().clamp(0, 255).to(torch.uint8)


def build_hyper_pass(session, split: BiasedSplit, model, prepare, rows: TrainingRows,
                     tables: LearnedTables, length: int) -> HyperPass:
    """A hyper pass of ``length`` steps with loaders of its own: the training set in another
    order than the training passes' (the original's hyper_loader) and the clean validation
    split."""
    config, train = session.config, session.bundle.train
    train_batches, _ = session.batches(train, split.train_indices, config.batch_size,
                                       train=True, stream=HYPER_BATCHES)
    validation_batches, _ = session.batches(train, split.validation_indices, config.batch_size,
                                            train=True, stream=VALIDATION_BATCHES)
    return HyperPass(model, prepare, session.preparer(), rows, tables, train_batches,
                     validation_batches, length, config)


def training(local_rank: int, config: AutodoConfig) -> None:
    session = open_session(ENTRY, config)
    train = session.bundle.train
    split = biased_split(config, session.bundle)
    # The session's own split knows nothing of the bias: evaluation and best-model selection
    # must use the clean validation split held out before it.
    session.splits = Splits(labelled=split.train_indices, unlabelled=split.train_indices,
                            validation=split.validation_indices)
    torch.manual_seed(derived_seed(config.seed, _RUN_WEIGHTS, config.run))
    model = session.create_model()
    optimizer = idist.auto_optim(build_optimizer(config, model.parameters()))
    batches, (policy,) = session.batches(train, split.train_indices, config.batch_size,
                                         train=True, policies=(config.policy,))
    epoch_length = config.epoch_length or len(batches)
    scheduler = build_scheduler(config, optimizer, config.num_epochs * epoch_length)
    rows = TrainingRows(split, len(train), session.device)
    tables = LearnedTables.build(config, split, session.device)
    prepare = session.preparer(policy)
    trainer = Engine(make_autodo_step(model, optimizer, session.precision, prepare, rows, tables,
                                      config))
    attach_autodo_outputs(trainer, session.tracker, split, tables)
    hyper_pass = None
    if tables.hyper_optimizer is not None:
        hyper_pass = build_hyper_pass(session, split, model, prepare, rows, tables, epoch_length)
        attach_hyper_passes(trainer, hyper_pass, session.tracker, split)

    def examples() -> torch.Tensor:
        if tables.augment is not None:
            return warped_examples(batches, prepare, tables.augment, rows)
        return augmented_examples(batches, policy, prepare.generator_for(0), session.device)

    extra_state = tables.state_objects()
    if hyper_pass is not None:
        extra_state["hyper_streams"] = hyper_pass.streams
    fit(session, trainer, model=model, optimizer=optimizer, scheduler=scheduler,
        data=batches, epoch_length=epoch_length, examples=examples, extra_state=extra_state,
        final_metrics=lambda loop: {"train/network_steps": loop.trainer.state.iteration})


def main(argv: list[str] | None = None) -> None:
    launch(ENTRY, AutodoConfig, training, argv, extra_checks=check_biased_split)


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main()
