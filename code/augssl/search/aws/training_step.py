"""The search's training step, the same in both stages: weak crop/flip, one pair drawn from a
policy for each image, Cutout, one optimiser step. Stage 1 draws from the uniform policy to train
the shared weights; each evaluation of stage 2 draws from the current policy to fine-tune its
copy."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from ignite.engine import Engine

from augssl.augment import AugmentSpec, BatchCutout, BatchWeak
from augssl.search.aws.policy import EnlargedBatch, PairPolicyTransform, enlarge_batch


class PairAugment:
    """The search's training augmentation: weak crop/flip, one pair drawn from a policy for each
    image (with Enlarge Batch, `multiplicity` copies of each image, each with its own pair),
    then Cutout."""

    def __init__(self, spec: AugmentSpec, multiplicity: int):
        self.weak = BatchWeak(spec.pad, spec.flip)
        self.cutout = BatchCutout(spec.cutout_size, spec.fill)
        self.fill = spec.fill
        self.multiplicity = multiplicity

    def __call__(self, images: torch.Tensor, targets: torch.Tensor,
                 transform: PairPolicyTransform, generator: torch.Generator) -> EnlargedBatch:
        batch = enlarge_batch(self.weak(images, generator), targets, transform,
                              self.multiplicity, generator, self.fill)
        return batch._replace(images=self.cutout(batch.images, generator))


def pair_step(model, optimizer, precision, augment: PairAugment, transform: PairPolicyTransform,
              prepare, label_smoothing: float, *, stream: int, first_step: int,
              on_batch: Callable[[EnlargedBatch], None] | None = None):
    """The ignite step function: one optimiser step on a batch augmented with pairs from
    ``transform``. The augmentation randomness depends only on (seed, step, stream), the step
    being ``first_step`` at the engine's first iteration; ``on_batch`` sees each augmented batch
    (the pairs its images received)."""

    def step(engine: Engine, batch) -> dict:
        model.train()
        images, targets, _ = batch
        images = images.to(prepare.device, non_blocking=True)
        targets = targets.to(prepare.device, non_blocking=True)
        generator = prepare.generator_for(first_step + engine.state.iteration - 1, stream)
        augmented = augment(images, targets, transform, generator)
        with precision.autocast():
            logits = model(prepare.normalise(augmented.images))
            loss = F.cross_entropy(logits, augmented.targets, label_smoothing=label_smoothing)
        precision.backward_and_step(loss, optimizer)
        if on_batch is not None:
            on_batch(augmented)
        return {"loss": loss.detach()}

    return step
