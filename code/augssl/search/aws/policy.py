"""The learned AWS policy P(op1, op2) = p1(op1) * p2(op2 | op1) over the 36-operation space.

Both factors are softmaxes of learned logits (36 for p1, 36x36 for p2), all zero at the start,
so the initial policy is uniform over the 1296 ordered pairs.  Softmax rather than a normalised
sigmoid sigma(x_i) / sum_j sigma(x_j): there the ratio of two entries is at most 1 / sigma(x_j),
so concentrating the policy drives the other logits towards -inf, where sigmoid's gradient
vanishes; a softmax reaches any distribution with gradients (onehot - p) that do not saturate,
and its log-probabilities and entropy are exact and cheap (log_softmax).

A policy is saved as JSON: the operation names and magnitudes, the distribution (p1 and the
rows of p2) as nested lists and the most probable sub-policies with their names, readable as is
and loadable back with `load_policy` / `load_policy_transform`.  `PairPolicyTransform` is the
frozen sampler used as a batch transform: `transform(images_uint8, generator)` draws a pair per
image and applies it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from augssl.augment.ops import FILL_GREY, Fill
from augssl.augment.tensor_ops import check_batch
from augssl.search.aws.space import NUM_OPERATIONS, OPERATION_NAMES, SEARCH_SPACE, apply_pairs

NUM_PAIRS = NUM_OPERATIONS * NUM_OPERATIONS
POLICY_FORMAT = "aws-autoaugment-policy"
POLICY_FORMAT_VERSION = 1
_SUM_TOLERANCE = 1e-4
# Each operation's argument (positive sign): stored so that a file names what its operations
# did, and refused if the space's magnitudes have changed since it was written.
_MAGNITUDES = [operation.argument() for operation in SEARCH_SPACE]


class SubPolicy(NamedTuple):
    """A pair of the search space by name with its probability under a policy."""

    first: str
    second: str
    probability: float


class AugmentedPairs(NamedTuple):
    """Augmented images with the pair each one received (indices into `SEARCH_SPACE`)."""

    images: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor


class EnlargedBatch(NamedTuple):
    """A batch in which each input image appears `multiplicity` times, each with its own pair."""

    images: torch.Tensor
    targets: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor


def pair_counts(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(36, 36) int64 histogram of sampled pairs, entry [i, j] counting the pairs (i, j).

    It stays on the indices' device, so summing it over the batches of a fine-tuning never
    waits for the GPU; `PolicyEvaluation` moves the total to the CPU once.
    """
    flat = first.long().flatten() * NUM_OPERATIONS + second.long().flatten()
    return torch.bincount(flat, minlength=NUM_PAIRS).view(NUM_OPERATIONS, NUM_OPERATIONS)


def draw_sub_policies(
    joint: torch.Tensor, count: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`count` pairs drawn from `joint` (with replacement), as their (36, 36) int64 histogram on
    the CPU: a policy of a few sub-policies, as AutoAugment's controller samples one; divided by
    `count`, it is the joint distribution a fine-tuning with those pairs draws from."""
    if count < 1:
        raise ValueError(f"a policy needs at least one sub-policy, got {count}")
    first, second = _sample_from_joint(joint, count, generator, "cpu")
    return pair_counts(first, second)


def _sample_from_joint(
    joint: torch.Tensor, count: int, generator: torch.Generator | None, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    # Drawing on the generator's device makes a seeded CPU generator give the same pairs
    # whatever device the policy or the images are on.
    source = generator.device if generator is not None else torch.device("cpu")
    probabilities = joint.detach().reshape(-1).to(device=source, dtype=torch.float64)
    flat = torch.multinomial(probabilities, count, replacement=True, generator=generator).to(device)
    return flat // NUM_OPERATIONS, flat % NUM_OPERATIONS


class PairPolicy(nn.Module):
    """Learnable distribution over ordered pairs of search operations (uniform at creation)."""

    def __init__(self) -> None:
        super().__init__()
        self.first_logits = nn.Parameter(torch.zeros(NUM_OPERATIONS))
        self.second_logits = nn.Parameter(torch.zeros(NUM_OPERATIONS, NUM_OPERATIONS))

    def first_probabilities(self) -> torch.Tensor:
        """p1(op1), shape (36,)."""
        return F.softmax(self.first_logits, dim=0)

    def second_probabilities(self) -> torch.Tensor:
        """p2(op2 | op1), shape (36, 36), one row per op1."""
        return F.softmax(self.second_logits, dim=1)

    def log_joint(self) -> torch.Tensor:
        """log P(op1, op2), shape (36, 36), differentiable."""
        first = F.log_softmax(self.first_logits, dim=0).unsqueeze(1)
        return first + F.log_softmax(self.second_logits, dim=1)

    def joint(self) -> torch.Tensor:
        """P(op1, op2) as a (36, 36) matrix summing to 1."""
        return self.log_joint().exp()

    def log_prob(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """log P of the given pairs (index tensors of equal shape), differentiable."""
        return self.log_joint()[first.long(), second.long()]

    def entropy(self) -> torch.Tensor:
        """Entropy (nats) of the joint distribution; log(1296) for the uniform policy."""
        log_joint = self.log_joint()
        return -(log_joint.exp() * log_joint).sum()

    def sample(
        self,
        count: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` independent pairs (first, second), on `device` (default: the policy's device)."""
        target = self.first_logits.device if device is None else device
        return _sample_from_joint(self.joint(), count, generator, target)

    def top_k(self, k: int) -> list[SubPolicy]:
        """The k most probable pairs, most probable first."""
        return _top_pairs(self.joint().detach(), k)

    def transform(self) -> PairPolicyTransform:
        """A frozen snapshot of the current distribution, usable as a batch transform."""
        return PairPolicyTransform(self.joint())

    def to_dict(self, top_k: int = 20) -> dict[str, Any]:
        """JSON-ready description: p1, the rows of p2, the entropy and the top-k sub-policies."""
        with torch.no_grad():
            first = self.first_probabilities().double().cpu()
            second = self.second_probabilities().double().cpu()
            return {
                "format": POLICY_FORMAT,
                "version": POLICY_FORMAT_VERSION,
                "operations": list(OPERATION_NAMES),
                "magnitudes": list(_MAGNITUDES),
                "first": first.tolist(),
                "second_given_first": second.tolist(),
                "entropy": float(self.entropy()),
                "top": [sub._asdict() for sub in self.top_k(top_k)],
            }

    @classmethod
    def from_dict(cls, description: dict[str, Any]) -> PairPolicy:
        """Inverse of `to_dict`: a policy with the stored distribution (top-k entries are
        ignored)."""
        first, second = _read_distribution(description)
        policy = cls()
        # zero probabilities stay finite so that Adam keeps working
        tiny = torch.finfo(torch.float32).tiny
        with torch.no_grad():
            policy.first_logits.copy_(first.clamp(min=tiny).log())
            policy.second_logits.copy_(second.clamp(min=tiny).log())
        return policy


def _top_pairs(joint: torch.Tensor, k: int) -> list[SubPolicy]:
    if not 1 <= k <= NUM_PAIRS:
        raise ValueError(f"top_k must lie in 1..{NUM_PAIRS} (the number of pairs), got {k}")
    probabilities, flat = joint.reshape(-1).double().cpu().topk(k)
    return [
        SubPolicy(
            OPERATION_NAMES[index // NUM_OPERATIONS],
            OPERATION_NAMES[index % NUM_OPERATIONS],
            float(p),
        )
        for p, index in zip(probabilities.tolist(), flat.tolist())
    ]


def _read_distribution(description: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    fix = "write the file with save_policy from the same version of the search space"
    if not isinstance(description, dict):
        raise ValueError(
            f"an AWS policy is a JSON object, got a {type(description).__name__}; {fix}"
        )
    if (
        description.get("format") != POLICY_FORMAT
        or description.get("version") != POLICY_FORMAT_VERSION
    ):
        raise ValueError(
            f"not an AWS policy: expected format {POLICY_FORMAT!r} version "
            f"{POLICY_FORMAT_VERSION}, got "
            f"format {description.get('format')!r} version {description.get('version')!r}; {fix}"
        )
    if description.get("operations") != list(OPERATION_NAMES):
        raise ValueError(
            "the policy was searched over a different list of operations than this search space "
            f"({', '.join(OPERATION_NAMES)}); {fix}"
        )
    magnitudes = description.get("magnitudes")
    if not isinstance(magnitudes, list) or len(magnitudes) != NUM_OPERATIONS:
        raise ValueError(
            f"the policy needs a list of {NUM_OPERATIONS} operation 'magnitudes'; {fix}"
        )
    for name, stored, current in zip(OPERATION_NAMES, magnitudes, _MAGNITUDES):
        same = isinstance(stored, (int, float)) and math.isclose(
            stored, current, rel_tol=1e-9, abs_tol=1e-12
        )
        if not same:
            raise ValueError(
                "the policy's operation magnitudes differ from this search space's: "
                f"{name} is {stored!r} in the file and {current!r} here; {fix}"
            )
    try:
        first = torch.tensor(description["first"], dtype=torch.float64)
        second = torch.tensor(description["second_given_first"], dtype=torch.float64)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            "the policy's 'first' / 'second_given_first' lists are missing or malformed "
            f"({error}); {fix}"
        ) from None
    if first.shape != (NUM_OPERATIONS,) or second.shape != (NUM_OPERATIONS, NUM_OPERATIONS):
        raise ValueError(
            f"expected 'first' of length {NUM_OPERATIONS} and 'second_given_first' of shape "
            f"{NUM_OPERATIONS}x{NUM_OPERATIONS}, got {tuple(first.shape)} and "
            f"{tuple(second.shape)}; {fix}"
        )
    sums = torch.cat([first.sum().view(1), second.sum(dim=1)])
    if not torch.isfinite(sums).all() or (first < 0).any() or (second < 0).any() or (
        (sums - 1).abs().max() > _SUM_TOLERANCE
    ):
        raise ValueError(
            "'first' and every row of 'second_given_first' must be non-negative and sum to 1 "
            f"(within {_SUM_TOLERANCE}); {fix}"
        )
    return first / first.sum(), second / second.sum(dim=1, keepdim=True)


class PairPolicyTransform:
    """Batch transform drawing one pair per image from a fixed joint distribution (36, 36)."""

    def __init__(self, joint: torch.Tensor) -> None:
        joint = joint.detach().to(device="cpu", dtype=torch.float64)
        if joint.shape != (NUM_OPERATIONS, NUM_OPERATIONS) or (joint < 0).any() or not math.isclose(
            float(joint.sum()), 1.0, abs_tol=_SUM_TOLERANCE
        ):
            raise ValueError(
                f"a policy transform needs a non-negative ({NUM_OPERATIONS}, {NUM_OPERATIONS}) "
                f"joint distribution summing to 1, got shape {tuple(joint.shape)} and sum "
                f"{float(joint.sum()):.6g}"
            )
        self.joint = joint / joint.sum()

    def sample(
        self,
        count: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _sample_from_joint(self.joint, count, generator, device)

    def augment(
        self, images: torch.Tensor, generator: torch.Generator | None = None, fill: Fill = FILL_GREY
    ) -> AugmentedPairs:
        """Augment a uint8 batch and report which pair every image received; `fill` colours the
        pixels geometric ops uncover (the data set's mean colour in training)."""
        check_batch(images)
        first, second = self.sample(images.shape[0], generator, images.device)
        images = apply_pairs(images, first, second, generator, fill=fill)
        return AugmentedPairs(images, first, second)

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None, fill: Fill = FILL_GREY
    ) -> torch.Tensor:
        return self.augment(images, generator, fill).images

    def top_k(self, k: int) -> list[SubPolicy]:
        return _top_pairs(self.joint, k)

    def __repr__(self) -> str:
        best = self.top_k(1)[0]
        return (f"PairPolicyTransform(most probable {best.first} -> {best.second}: "
                f"{best.probability:.4g})")


def enlarge_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    transform: PairPolicyTransform,
    multiplicity: int,
    generator: torch.Generator | None = None,
    fill: Fill = FILL_GREY,
) -> EnlargedBatch:
    """Enlarge Batch: every image repeated `multiplicity` times (copies adjacent), each copy with
    an independently sampled pair; targets are repeated alongside.  `fill` as in
    `PairPolicyTransform.augment`."""
    check_batch(images)
    if multiplicity < 1:
        raise ValueError(
            "the Enlarge Batch multiplicity must be a positive number of copies, got "
            f"{multiplicity}"
        )
    if targets.shape[0] != images.shape[0]:
        raise ValueError(
            f"targets must hold one entry per image: {images.shape[0]} images but "
            f"{targets.shape[0]} targets"
        )
    repeated = images.repeat_interleave(multiplicity, dim=0)
    augmented = transform.augment(repeated, generator, fill)
    return EnlargedBatch(
        augmented.images,
        targets.repeat_interleave(multiplicity, dim=0),
        augmented.first,
        augmented.second,
    )


def save_policy(policy: PairPolicy, path: str | Path, top_k: int = 20) -> Path:
    """Write the policy as indented JSON (see `PairPolicy.to_dict`); returns the path."""
    path = Path(path)
    path.write_text(json.dumps(policy.to_dict(top_k), indent=1) + "\n")
    return path


def load_policy(path: str | Path) -> PairPolicy:
    path = Path(path)
    try:
        description = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"policy file {path} does not exist; pass the JSON written by save_policy"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"policy file {path} is not valid JSON ({error}); pass the file written by save_policy"
        ) from None
    try:
        return PairPolicy.from_dict(description)
    except ValueError as error:
        raise ValueError(f"policy file {path}: {error}") from None


def load_policy_transform(path: str | Path) -> PairPolicyTransform:
    """The batch transform of a saved policy: `transform(images_uint8, generator)`."""
    return load_policy(path).transform()
