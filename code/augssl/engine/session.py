"""One process's view of a training run: device, seeds, data, splits, batches, model, optimiser,
MLflow tracking. Entry scripts open a session, write their step function, and run."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import ignite.distributed as idist
import numpy as np
import torch

from augssl.augment import AugmentSpec, build_batch_transform, build_pil_transform, fill_from_mean
from augssl.augment.policy_schemes import policy_reference
from augssl.config import ConfigError
from augssl.data.loaders import (
    BatchPreparer,
    DeviceBatches,
    derived_seed,
    images_as_tensor,
    worker_batches,
)
from augssl.data.sources import load_dataset
from augssl.data.splits import Splits, make_splits
from augssl.engine.amp import Precision
from augssl.engine.tracking import RunTracker
from augssl.models import build_model


def select_device(choice: str) -> torch.device:
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible: use device=cpu or auto.")
    return idist.device()


def available_cores() -> int:
    """The CPU cores this process may run on: its affinity set where the OS has one (a container
    or `taskset` may allow fewer than the machine has), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# the key, after the seed, of the draw of the train/ evaluation subset
TRAIN_EVAL_STREAM = 11


def default_autoaugment_policy(dataset: str) -> str:
    name = dataset.lower()
    if name.startswith("svhn"):
        return "svhn"
    if name.startswith("imagenet"):
        return "imagenet"
    return "cifar10"


@dataclass
class Session:
    entry: str
    config: object
    device: torch.device
    rank: int
    world_size: int
    bundle: object
    splits: object
    tracker: RunTracker
    precision: Precision
    source_bundle: object = None  # the data set before ``select`` restricted it

    @property
    def num_classes(self) -> int:
        return len(self.bundle.classes)

    def augment_spec(self) -> AugmentSpec:
        c = self.config
        return AugmentSpec(
            image_size=self.bundle.image_size, channels=self.bundle.channels,
            flip=self.bundle.flip,
            autoaugment_policy=c.autoaugment_policy or default_autoaugment_policy(c.dataset),
            randaugment_num_ops=c.randaugment_num_ops,
            randaugment_magnitude=c.randaugment_magnitude,
            cutout_size=c.cutout_size, fill=fill_from_mean(self.bundle.mean))

    def create_model(self, **options) -> torch.nn.Module:
        model = build_model(self.config.network, num_classes=self.num_classes,
                            in_channels=self.bundle.channels, **options)
        model = model.to(self.device)
        if self.config.channels_last:
            # the convolutions' weights in NHWC order make the convolution and pooling kernels
            # run in that order too, and their outputs with them; one-channel images are the
            # same bytes in either order, colour ones are reordered by the first convolution
            model = model.to(memory_format=torch.channels_last)
        return idist.auto_model(model)

    def preparer(self, augment=None) -> BatchPreparer:
        return BatchPreparer(self.bundle.mean, self.bundle.std, self.device, augment,
                             seed=self.config.seed)

    def _device_images(self, source):
        cache = self.__dict__.setdefault("_on_device", {})
        if id(source) not in cache:
            cache[id(source)] = (images_as_tensor(source.images).to(self.device),
                                 torch.as_tensor(source.targets).to(self.device))
        return cache[id(source)]

    def batches(self, source, indices, batch_size: int, *, train: bool,
                policies: tuple[str, ...] = ("none",), stream: int = 0):
        """(batches of uint8 images, one device augmentation or None per policy).

        With ``augment_on=device`` and an in-memory source the images stay on the device and each
        policy becomes a batched device augmentation; otherwise DataLoader workers open the
        images and, with ``augment_on=cpu``, make one PIL-augmented view per policy (take view k
        of a batch with ``augssl.data.loaders.view``). Loaders of one run with different
        ``stream`` numbers shuffle independently.
        """
        c = self.config
        spec = self.augment_spec()
        per_process = max(1, batch_size // self.world_size)
        on_workers = train and c.augment_on == "cpu"
        device_augments = tuple(device_augment(p, spec) if train and not on_workers
                                else None for p in policies)
        if source.in_memory and not on_workers:
            images, targets = self._device_images(source)
            batches = DeviceBatches(images, targets, indices, per_process, shuffle=train,
                                    drop_last=train, seed=c.seed, stream=stream,
                                    rank=self.rank, world_size=self.world_size)
            return batches, device_augments
        views = tuple(build_pil_transform(p, spec) for p in policies) if on_workers else (None,)
        batches = worker_batches(source, indices, per_process, shuffle=train, drop_last=train,
                                 views=views, num_workers=c.num_workers, seed=c.seed,
                                 stream=stream, pin_memory=self.device.type == "cuda")
        return batches, device_augments

    def eval_splits(self, batch_size: int = 512) -> dict:
        splits = {}
        train_rows = train_eval_rows(self.splits.labelled, self.config)
        if len(train_rows):
            splits["train"] = self.batches(self.bundle.train, train_rows, batch_size,
                                           train=False)[0]
        if len(self.splits.validation):
            splits["validation"] = self.batches(self.bundle.train, self.splits.validation,
                                                batch_size, train=False)[0]
        test_indices = np.arange(len(self.bundle.test))
        splits["test"] = self.batches(self.bundle.test, test_indices, batch_size, train=False)[0]
        return splits


def train_eval_rows(labelled: np.ndarray, config) -> np.ndarray:
    """The labelled rows evaluated for the train/ metrics, sorted: all of them, or a subset of
    ``train_eval_samples`` drawn from the seed (the same at every evaluation and on resume)."""
    count = config.train_eval_samples
    if len(labelled) > count:
        rng = np.random.default_rng(derived_seed(config.seed, TRAIN_EVAL_STREAM))
        labelled = rng.choice(labelled, count, replace=False)
    return np.sort(labelled)


def device_augment(policy: str, spec: AugmentSpec):
    """The batched augmentation of a policy name, or of a ``<scheme>:<reference>`` policy such as
    ``aws:<run id>`` (`augssl.augment.policy_schemes`)."""
    found = policy_reference(policy)
    if found is not None:
        scheme, reference = found
        return scheme.augment(reference, spec)
    return build_batch_transform(policy, spec)


# one dict per open ``reading_once`` block: the data sets read in it, by (name, data_path)
_READ: list[dict] = []


def source_dataset(config):
    """The data set ``config`` names, read now or, within a ``reading_once`` block, once."""
    key = config.dataset, config.data_path or None
    if not _READ:
        return load_dataset(*key)
    held = next((block for block in _READ if key in block), _READ[-1])
    if key not in held:
        held[key] = load_dataset(*key)
    return held[key]


@contextmanager
def reading_once() -> Iterator[dict]:
    """Within the block, ``source_dataset`` reads each data set once and returns that bundle to
    every caller (an entry's checks, then its session): a run's images are read and decoded
    once per process. Yields the block's data sets; clearing it lets them go."""
    _READ.append({})
    try:
        yield _READ[-1]
    finally:
        _READ.pop()


def split_training_set(config, bundle) -> Splits:
    """The validation and labelled splits ``config`` asks of ``bundle``'s training set. A request
    the data set cannot meet is a ConfigError naming the key to change and the values that
    work, so that the entries refuse it before any run (``augssl.engine.entry.preflight``)."""
    available, num_classes = len(bundle.train), len(bundle.classes)
    validation, labelled = config.num_validation_samples, config.num_labelled_samples
    if validation >= available:
        raise ConfigError(f"num_validation_samples={validation} asks for more images than "
                          f"{config.dataset} can give: its training set holds {available}. Use "
                          f"num_validation_samples={available - num_classes} or fewer.")
    if labelled >= 0 and labelled + validation > available:
        raise ConfigError(f"num_labelled_samples={labelled} asks for more images than "
                          f"{config.dataset} can give: its training set holds {available}, of "
                          f"which num_validation_samples={validation} are held out. Use "
                          f"num_labelled_samples={available - validation} or fewer, or -1 for "
                          "all.")
    if 0 <= labelled < num_classes:
        raise ConfigError(f"num_labelled_samples={labelled}: a stratified labelled subset of the "
                          f"{num_classes} classes needs at least one image per class: use "
                          f"num_labelled_samples={num_classes} or more, or -1 for all.")
    try:
        return make_splits(np.asarray(bundle.train.targets), None if labelled < 0 else labelled,
                           validation, config.data_split_seed, num_classes,
                           class_names=bundle.classes)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def open_session(entry: str, config, select=None) -> Session:
    """``select(config, bundle) -> bundle`` may restrict the data set (e.g. to some classes)
    before the splits are made; the entry gives the same to ``launch`` for its checks."""
    rank, world_size = idist.get_rank(), idist.get_world_size()
    device = select_device(config.device)
    if device.type == "cpu" and world_size > 1:
        # processes sharing the cores: more threads than cores makes every op wait on the others
        torch.set_num_threads(max(1, available_cores() // idist.get_nproc_per_node()))
    seed_everything(config.seed + rank)
    if config.deterministic:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    source_bundle = source_dataset(config)
    bundle = select(config, source_bundle) if select is not None else source_bundle
    splits = split_training_set(config, bundle)
    tracker = RunTracker(enabled=rank == 0)
    return Session(entry, config, device, rank, world_size, bundle, splits, tracker,
                   Precision(config.amp, device), source_bundle)


def run_tracked(session: Session, continue_run_id: str | None, body) -> None:
    """Start the MLflow run, call ``body()``, end the run FINISHED or FAILED."""
    session.tracker.start(session.entry, session.config, continue_run_id)
    try:
        body()
    except BaseException:
        session.tracker.finish("FAILED")
        raise
    session.tracker.finish("FINISHED")
