"""Augmented copies of an image set, made once and kept as a cached data set (RealMix's
``make_aug_copy``).

A cache entry is named by a hash of what determines its content: the images themselves, the
augmentation and its settings, the number of copies and the seed. A later run asking for the same
copies reuses the entry; any change makes a new one. Copies are written into a temporary folder
that is renamed into place only when complete, so an interrupted run never leaves a half-written
entry that a later run would take for a finished one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from augssl.augment import AugmentSpec, build_batch_transform
from augssl.config import ConfigError
from augssl.data.loaders import derived_seed, images_as_tensor

FORMAT_VERSION = 1
_CHUNK = 1024


def cache_key(images: np.ndarray, policy: str, spec: AugmentSpec, copies: int, seed: int) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).data)
    settings = {"policy": policy, "spec": dataclasses.asdict(spec), "copies": copies,
                "seed": seed, "shape": list(images.shape), "version": FORMAT_VERSION}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def check_free_space(folder: Path, needed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed * 1.05:
        raise ConfigError(
            f"the augmented copies need {needed / 2**30:.2f} GiB in {folder}, but only "
            f"{free / 2**30:.2f} GiB are free: lower aug_copy, or set cache_dir to a disk with "
            "more room.")


def augmented_copies(images: np.ndarray, policy: str, spec: AugmentSpec, copies: int,
                     seed: int, cache_dir: Path, device: torch.device) -> np.ndarray:
    """``copies`` augmented versions of ``images`` (N x H x W x C uint8), as a read-only
    copies x N x H x W x C memory map, made on ``device`` if the cache does not hold them."""
    key = cache_key(images, policy, spec, copies, seed)
    folder = cache_dir / key
    target = folder / "copies.npy"
    if not target.is_file():
        check_free_space(cache_dir, copies * images.nbytes)
        _write(images, policy, spec, copies, seed, folder, device)
    return np.load(target, mmap_mode="r")


def _write(images: np.ndarray, policy: str, spec: AugmentSpec, copies: int, seed: int,
           folder: Path, device: torch.device) -> None:
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        out = np.lib.format.open_memmap(partial / "copies.npy", mode="w+", dtype=np.uint8,
                                        shape=(copies,) + images.shape)
        augment = build_batch_transform(policy, spec)
        for copy in range(copies):
            for start in range(0, len(images), _CHUNK):
                chunk = images_as_tensor(images[start:start + _CHUNK]).to(device)
                generator = torch.Generator(device=device).manual_seed(
                    derived_seed(seed, copy, start))
                augmented = augment(chunk, generator).permute(0, 2, 3, 1).cpu().numpy()
                out[copy, start:start + len(augmented)] = augmented
        out.flush()
        del out
        (partial / "meta.json").write_text(json.dumps(
            {"policy": policy, "copies": copies, "seed": seed, "shape": list(images.shape)},
            indent=2))
        os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def sample_views(copies: np.ndarray, positions: np.ndarray, views: int,
                 rng: np.random.Generator) -> np.ndarray:
    """For each position, ``views`` different randomly chosen copies:
    views x B x H x W x C, gathered in one vectorised read."""
    count = copies.shape[0]
    if views > count:
        raise ConfigError(f"{views} views need at least {views} augmented copies, "
                          f"but aug_copy={count}.")
    # distinct copies per image: the first `views` entries of a random permutation per row
    choice = np.argsort(rng.random((len(positions), count)), axis=1)[:, :views].T
    return copies[choice, positions[None, :]]
