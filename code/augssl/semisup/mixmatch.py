"""The MixMatch family's pieces RealMix uses: label guessing with sharpening, MixUp over the whole
set, the ramp of the unlabelled loss weight, out-of-distribution masking, and BatchNorm updates
taken from the labelled batch only."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F


def sharpen(probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """p^(1/T) renormalised over the classes (T < 1 sharpens)."""
    powered = probabilities.clamp(min=1e-12) ** (1.0 / temperature)
    return powered / powered.sum(dim=1, keepdim=True)


@torch.no_grad()
def guess_labels(logits_per_view: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """Average the softmax over the augmented views, then sharpen; never differentiated."""
    mean = torch.stack([torch.softmax(v.float(), dim=1) for v in logits_per_view]).mean(0)
    return sharpen(mean, temperature)


def mixup_lambdas(beta: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """One lambda per sample, as MixMatch draws them: lambda ~ Beta(beta, beta), then
    max(lambda, 1 - lambda): every mixed sample stays closer to its own original, so position i
    keeps the identity (and the loss) of sample i."""
    draws = rng.beta(beta, beta, size=count)
    return np.maximum(draws, 1.0 - draws)


def mixup(inputs: torch.Tensor, targets: torch.Tensor, lam: torch.Tensor, order: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix sample i with sample order[i] by its own weight lam[i], inputs and targets alike."""

    def mix(values: torch.Tensor) -> torch.Tensor:
        weight = lam.to(values.dtype).view(-1, *[1] * (values.dim() - 1))
        return weight * values + (1.0 - weight) * values[order]

    return mix(inputs), mix(targets)


def ramp(step: int, ramp_steps: int) -> float:
    """Linear from 0 to 1 over ``ramp_steps`` steps, then 1."""
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, step / ramp_steps)


def confidence_mask(probabilities: torch.Tensor, drop_fraction: float) -> torch.Tensor:
    """1 for the samples kept, 0 for the ``drop_fraction`` least confident (by max probability).

    Out-of-distribution masking: unlabelled images of classes the model does not know tend to
    get flat predictions; dropping the least confident keeps them out of the unlabelled loss.
    The original thresholds at the sorted value at index int(fraction * count) and keeps only
    the samples strictly above it, which drops one sample more than the fraction (and all ties);
    here exactly round(fraction * count) are dropped.
    """
    count = len(probabilities)
    dropped = int(round(drop_fraction * count))
    mask = torch.ones(count, device=probabilities.device)
    if dropped > 0:
        least_confident = probabilities.max(dim=1).values.argsort()[:dropped]
        mask[least_confident] = 0.0
    return mask


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy against soft targets."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)


def masked_squared_error(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
                         ) -> torch.Tensor:
    """Mean over kept samples and classes of (softmax(logits) - targets)^2."""
    per_sample = ((torch.softmax(logits.float(), dim=1) - targets) ** 2).mean(dim=1)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1.0)


@contextlib.contextmanager
def frozen_batchnorm_statistics(model: torch.nn.Module):
    """Forward passes inside use batch statistics but leave the running statistics as they are.

    MixMatch's reference code lets only the labelled batch update BatchNorm's running
    statistics (it interleaves the batches for that); running the other batches under this
    context is the same in effect.
    """
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    counts = [m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None
              for m in layers]
    for m in layers:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in zip(layers, momenta, counts):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


def forward_interleaved(model: torch.nn.Module, inputs: torch.Tensor, batches: int
                        ) -> torch.Tensor:
    """The model's logits on ``inputs`` (the mixed labelled images first, then the mixed views),
    computed in ``batches`` forward passes that each take every ``batches``-th sample, so that
    every pass holds the labelled and unlabelled samples in the same proportion as the set.

    This is what MixMatch's (and RealMix's) interleave achieves: each pass normalises with the
    statistics of a mix of labelled and unlabelled images, and only the first pass updates
    BatchNorm's running statistics. The original swaps equal slices between the labelled batch
    and each view, which needs as many unlabelled images as labelled ones; taking every
    ``batches``-th sample gives the same mix for any batch sizes.
    """
    outputs = [model(inputs[0::batches])]
    with frozen_batchnorm_statistics(model):
        outputs += [model(inputs[start::batches]) for start in range(1, batches)]
    logits = outputs[0].new_empty((len(inputs), *outputs[0].shape[1:]))
    for start, output in enumerate(outputs):
        logits[start::batches] = output
    return logits


@torch.no_grad()
def decay_weights(model: torch.nn.Module, factor: float) -> None:
    """Decoupled weight decay: multiply the weights of convolutions and linear layers (not the
    biases or BatchNorm) by ``factor`` = 1 - wd * lr, once per step."""
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.weight.mul_(factor)
