"""Batches for training and evaluation.

Two ways to feed a model:

* ``DeviceBatches``: the whole (in-memory) image set lives on the training device as uint8 and
  batches are gathered by index; augmentation then runs batched on the device. No worker processes,
  no per-sample Python work. The order of every epoch is a pure function of (seed, epoch), so a
  resumed run sees the same batches as an uninterrupted one.
* ``worker_batches``: a torch DataLoader whose workers open images and, when asked, apply the PIL
  reference augmentation per image. Needed for folder data sets too large for memory, and the
  reference implementation for ``augment_on=cpu``.

Both yield ``(images_uint8_NCHW, targets, indices)``; ``BatchPreparer`` turns that into the
normalised float batch a model sees.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

_ORDER, _AUGMENT = 1, 2  # keep the batch order and the augmentation streams apart


def derived_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys; unlike ``seed * C + step`` the seeds of
    different (seed, step) pairs do not collide in long runs."""
    return int(np.random.SeedSequence(list(keys)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def images_as_tensor(images: np.ndarray) -> torch.Tensor:
    """N x H x W x C uint8 array to an N x C x H x W uint8 tensor (no copy of the pixels'
    values)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


class DeviceBatches:
    """Shuffled (or ordered) batches gathered from image and target tensors held on a device.

    ``rank``/``world_size`` shard every epoch's order so each process sees its own part.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, indices: np.ndarray,
                 batch_size: int, *, shuffle: bool, drop_last: bool, seed: int = 0,
                 stream: int = 0, rank: int = 0, world_size: int = 1):
        if len(indices) == 0:
            raise ValueError("cannot build batches from an empty index set")
        self.images = images
        self.targets = targets
        self.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last and len(indices) // world_size >= batch_size
        self.seed = seed
        self.stream = stream  # loaders of one run with different streams shuffle independently
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0  # where the next iteration starts
        self.start_batch = 0
        self._next = (0, 0)  # (epoch, batch) of the next batch handed out

    def _order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            order = self.indices
        else:
            generator = torch.Generator().manual_seed(
                derived_seed(self.seed, _ORDER, self.stream, epoch))
            order = self.indices[torch.randperm(len(self.indices), generator=generator)]
        if self.world_size == 1:
            return order
        if not self.shuffle:
            # evaluation: every image once, the remainder spread over the first processes
            return torch.tensor_split(order, self.world_size)[self.rank]
        # training: equal shares so every process runs the same number of steps
        per_rank = len(order) // self.world_size
        return order[self.rank * per_rank:(self.rank + 1) * per_rank]

    def _share(self) -> int:
        total = len(self.indices)
        if self.world_size == 1:
            return total
        if not self.shuffle:
            return len(range(total)[self.rank::self.world_size])  # tensor_split's share size
        return total // self.world_size

    def __len__(self) -> int:
        count = self._share()
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def resume_at(self, epoch: int, batch: int) -> None:
        """Make the next iteration start at ``batch`` of ``epoch`` (for exact resumption)."""
        self.epoch, self.start_batch = epoch, batch
        self._next = (epoch, batch)

    def state_dict(self) -> dict:
        """Where the batches go on: the epoch and batch of the next one handed out."""
        epoch, batch = self._next
        return {"epoch": epoch, "batch": batch}

    def load_state_dict(self, state: dict) -> None:
        self.resume_at(int(state["epoch"]), int(state["batch"]))

    def position_after(self, count: int) -> dict:
        """The state after ``count`` batches read from the start: ignite and ``cycle`` restart
        an exhausted iterator, so batch i is batch i % n of epoch i // n."""
        return {"epoch": count // len(self), "batch": count % len(self)}

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        epoch, start = self.epoch, self.start_batch
        order = self._order(epoch).to(self.images.device)
        self.epoch, self.start_batch = epoch + 1, 0
        count = len(self)
        for b in range(start, count):
            self._next = (epoch, b + 1) if b + 1 < count else (epoch + 1, 0)
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.images[batch], self.targets[batch], batch


def cycle(batches) -> Iterator:
    """Iterate over ``batches`` forever, starting a new epoch whenever one ends."""
    while True:
        yield from batches


class _SourceImages(torch.utils.data.Dataset):
    """Items (uint8 C x H x W image, target, index); with several PIL ``views`` the image is a
    V x C x H x W stack, one independently augmented copy per view."""

    def __init__(self, source, indices: np.ndarray, views: tuple[Callable | None, ...]):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.views = views

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = int(self.indices[i])
        image = self.source.load_pil(index)
        arrays = [_as_chw(view(image) if view is not None else image) for view in self.views]
        pixels = arrays[0] if len(arrays) == 1 else torch.stack(arrays)
        return pixels, int(self.source.targets[index]), index


def _as_chw(image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def view(images: torch.Tensor, k: int) -> torch.Tensor:
    """View ``k`` of a batch: the batch itself when its views are made later on the device, or
    slice k of a B x V x C x H x W batch whose views DataLoader workers made."""
    return images[:, k] if images.dim() == 5 else images


def worker_batches(source, indices: np.ndarray, batch_size: int, *, shuffle: bool,
                   drop_last: bool, views: tuple[Callable | None, ...], num_workers: int,
                   seed: int = 0, stream: int = 0, pin_memory: bool = False):
    """A DataLoader over ``source`` whose workers open each image and make its ``views`` (PIL
    transforms, None for the image as it is)."""
    import ignite.distributed as idist

    dataset = _SourceImages(source, indices, views)
    generator = torch.Generator().manual_seed(derived_seed(seed, _ORDER, stream))
    return idist.auto_dataloader(
        dataset, batch_size=batch_size * idist.get_world_size(), shuffle=shuffle,
        drop_last=drop_last and len(dataset) >= batch_size, num_workers=num_workers,
        pin_memory=pin_memory, generator=generator,
        persistent_workers=num_workers > 0)


class BatchPreparer:
    """uint8 batch -> (optionally augmented) normalised float batch on the training device."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
                 augment: Callable | None = None, seed: int = 0):
        self.device = device
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255.0
        self.inv_std = 1.0 / (torch.tensor(std, device=device).view(1, -1, 1, 1) * 255.0)
        self.augment = augment
        self.seed = seed

    def generator_for(self, step: int, stream: int = 0) -> torch.Generator:
        """Augmentation randomness of a step depends only on (seed, step, stream): resumable.
        Each view of a step (labelled, clean, strong...) takes its own ``stream``."""
        return torch.Generator(device=self.device).manual_seed(
            derived_seed(self.seed, _AUGMENT, step, stream))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean) * self.inv_std

    def __call__(self, images: torch.Tensor, step: int = 0, stream: int = 0) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.augment is not None:
            images = self.augment(images, self.generator_for(step, stream))
        return self.normalise(images)
