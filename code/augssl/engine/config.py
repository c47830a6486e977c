"""The options every training entry shares; entries extend this dataclass with their own."""

from __future__ import annotations

from dataclasses import dataclass

from augssl.augment import AUTOAUGMENT_POLICY_NAMES, CUTOUT_HALF_SIDE, POLICY_NAMES
from augssl.augment.policy_schemes import policy_forms, policy_reference
from augssl.config import ConfigError, spec

AMP_MODES = ("off", "auto", "bf16", "fp16")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("cosine", "constant", "cosine_7_16")
DEVICES = ("auto", "cpu", "cuda")
AUGMENT_ON = ("device", "cpu")


@dataclass(frozen=True)
class TrainingConfig:
    dataset: str = spec("FashionMNIST", "data set name (CIFAR10, CIFAR100, SVHN, MNIST, "
                        "FashionMNIST, ImageNet, custom)")
    network: str = spec("smallcnn", "model name (see augssl.models.MODEL_NAMES)")
    preset: str = spec("", "a ready configuration, experiments/presets/<preset>.params; the "
                       "other params override it")
    data_path: str = spec("", "where the data set lives; empty: input/<dataset> in the repository")
    seed: int = spec(0, "seed of the split, the initial weights and the augmentation", min=0)
    split_seed: int = spec(-1, "seed of the validation and labelled images alone, so that runs "
                           "of several seeds train on the same images; -1: the seed", min=-1)
    num_labelled_samples: int = spec(-1, "labelled training images, stratified; -1: all", min=-1)
    num_validation_samples: int = spec(5000, "images held out of train for validation", min=0)
    batch_size: int = spec(128, "labelled images per step, summed over all processes", min=1)
    num_epochs: int = spec(10, "training epochs", min=1)
    epoch_length: int = spec(0, "iterations per epoch; 0: one pass over the labelled set", min=0)
    optimizer: str = spec("sgd", "optimiser", choices=OPTIMIZERS)
    learning_rate: float = spec(0.05, "peak learning rate", min=0.0)
    momentum: float = spec(0.9, "SGD momentum", min=0.0, max=1.0)
    nesterov: bool = spec(True, "Nesterov momentum for SGD")
    weight_decay: float = spec(5e-4, "L2 weight decay", min=0.0)
    lr_schedule: str = spec("cosine", "per-iteration learning-rate schedule", choices=LR_SCHEDULES)
    num_warmup_steps: int = spec(0, "linear warm-up iterations", min=0)
    min_lr_ratio: float = spec(0.004, "final lr of the cosine schedule, as a fraction of the peak",
                               min=0.0, max=1.0)
    label_smoothing: float = spec(0.0, "label smoothing of the supervised loss", min=0.0, max=1.0)
    ema_decay: float = spec(0.0, "parameter EMA decay, warmed up as min(decay, (1 + n) / (10 + "
                            "n)) at update n; 0 disables it (evaluation then uses the raw "
                            "weights)", min=0.0, max=1.0)
    amp: str = spec("off", "mixed precision: auto = fp16 on CUDA, bf16 on CPU", choices=AMP_MODES)
    policy: str = spec("cutout", "augmentation of the labelled images; aws:<run id or file>: "
                       "the policy an aws_search run learned", choices=POLICY_NAMES,
                       open_choices=policy_forms)
    augment_on: str = spec("device", "where augmentation runs: batched on the training device, or "
                           "PIL per image in DataLoader workers", choices=AUGMENT_ON)
    autoaugment_policy: str = spec("", "AutoAugment sub-policy set; empty: chosen from the data "
                                   "set", choices=("",) + AUTOAUGMENT_POLICY_NAMES)
    randaugment_num_ops: int = spec(2, "RandAugment: operations per image", min=0)
    randaugment_magnitude: int = spec(9, "RandAugment: magnitude", min=0, max=30)
    cutout_size: int = spec(CUTOUT_HALF_SIDE, "Cutout square side in pixels; -1: half the image "
                            "side (16 on 32 px images); 0 disables Cutout", min=CUTOUT_HALF_SIDE)
    num_workers: int = spec(2, "DataLoader workers (augment_on=cpu and folder data sets)", min=0)
    eval_every: int = spec(1, "evaluate every this many epochs", min=1)
    train_eval_samples: int = spec(5000, "labelled images (all when fewer; else a fixed subset "
                                   "drawn from the seed) evaluated without augmentation for "
                                   "the train/ accuracy, precision, recall and F1; 0: none",
                                   min=0)
    log_every: int = spec(10, "log batch losses every this many iterations", min=1)
    checkpoint_every: int = spec(1000, "save a checkpoint every this many iterations", min=1)
    resume: str = spec("", "checkpoint path or MLflow run id to resume from")
    register_model: str = spec("", "register the run's best model (the final one without a "
                               "validation split) under this name in the Model Registry")
    device: str = spec("auto", "training device", choices=DEVICES)
    backend: str = spec("", "distributed backend (nccl, gloo); empty: a single process")
    nproc_per_node: int = spec(1, "processes to spawn on this machine (with backend)", min=1)
    deterministic: bool = spec(False, "use deterministic cuDNN kernels (slower)")
    channels_last: bool = spec(True, "train in the channels-last memory order (about 1.35 times "
                               "the steps/s of smallcnn on CPU cores; bench/bench_memory_format)"
                               "; false: the contiguous order")

    @property
    def data_split_seed(self) -> int:
        """The seed that draws the validation and labelled images."""
        return self.seed if self.split_seed < 0 else self.split_seed

    def validate(self) -> None:
        if self.nproc_per_node > 1 and not self.backend:
            raise ConfigError(f"nproc_per_node={self.nproc_per_node} needs a distributed backend: "
                              "add backend=gloo (CPU) or backend=nccl (GPUs).")
        if self.backend and self.backend not in ("nccl", "gloo"):
            raise ConfigError(f"backend={self.backend!r} is not allowed: expected nccl or gloo.")
        if policy_reference(self.policy) is not None and self.augment_on == "cpu":
            raise ConfigError(f"policy={self.policy} runs batched on the training device; it has "
                              "no per-image PIL version for augment_on=cpu: use "
                              "augment_on=device.")
        if self.num_labelled_samples == 0:
            raise ConfigError("num_labelled_samples=0 leaves nothing to learn from: "
                              "expected -1 (all) or a positive number.")
