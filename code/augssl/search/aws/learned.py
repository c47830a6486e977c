"""Training with a policy an `aws_search` run learned: ``policy=aws:<run id or policy.json>``.

The reference is a policy file on disk or the id of the MLflow search run that wrote one (its
``policy.json`` artifact); ``aws:uniform`` is the policy every search starts from, uniform over
the pairs, the line a learned policy must beat. The augmentation is the search's own: weak
crop/flip, one pair drawn per image from the learned P(op1, op2), then Cutout, batched on the
training device, filling with the data set's mean colour (`AugmentSpec.fill`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from augssl.augment import AugmentSpec, BatchCutout, BatchWeak
from augssl.augment.policy_schemes import PolicyScheme
from augssl.search.aws.policy import PairPolicy, PairPolicyTransform, load_policy

__all__ = ["LEARNED_POLICY_SCHEME", "UNIFORM", "LearnedPolicyAugment", "check_learned_policy",
           "learned_policy", "resolve_learned_policy"]

POLICY_ARTIFACT = "policy.json"
UNIFORM = "uniform"
_RUN_ID = re.compile(r"[0-9a-f]{32}")


def resolve_learned_policy(reference: str) -> Path:
    """The local policy file of a reference: the file itself, or the search run's artifact."""
    path = Path(reference).expanduser()
    if path.is_file():
        return path
    if not _RUN_ID.fullmatch(reference):
        raise FileNotFoundError(
            f"policy=aws:{reference}: no such file, and not an MLflow run id (32 hex digits). "
            f"Pass the {POLICY_ARTIFACT} an aws_search run wrote, or that run's id.")
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        local = mlflow.artifacts.download_artifacts(run_id=reference,
                                                    artifact_path=POLICY_ARTIFACT)
    except (MlflowException, OSError) as error:
        raise FileNotFoundError(
            f"policy=aws:{reference}: the run has no {POLICY_ARTIFACT} in the tracking store "
            f"{mlflow.get_tracking_uri()} ({str(error).splitlines()[0]}). Give the id of a "
            "finished aws_search run, set MLFLOW_TRACKING_URI to the store holding it, or pass "
            "the file.") from None
    return Path(local)


def learned_policy(reference: str) -> PairPolicy:
    """The policy ``reference`` names: ``uniform``, a policy file or a search run's."""
    if reference == UNIFORM:
        return PairPolicy()
    return load_policy(resolve_learned_policy(reference))


def check_learned_policy(reference: str) -> None:
    """Fail, before any training, unless ``reference`` names a readable policy."""
    learned_policy(reference)


class LearnedPolicyAugment:
    """weak -> one learned pair per image -> Cutout; ``augment(images_uint8, generator)``."""

    def __init__(self, transform: PairPolicyTransform, spec: AugmentSpec):
        self.pairs = transform
        self.fill = spec.fill
        self.weak = BatchWeak(spec.pad, spec.flip)
        self.cutout = BatchCutout(spec.cutout_size, spec.fill) if spec.cutout_size > 0 else None

    @classmethod
    def from_reference(cls, reference: str, spec: AugmentSpec) -> LearnedPolicyAugment:
        return cls(learned_policy(reference).transform(), spec)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        images = self.pairs(self.weak(images, generator), generator, self.fill)
        return self.cutout(images, generator) if self.cutout is not None else images


# registered by augssl.search.aws, which augssl.augment.policy_schemes imports for "aws:" values
LEARNED_POLICY_SCHEME = PolicyScheme(prefix="aws",
                                     reference=f"<run id, {POLICY_ARTIFACT} or {UNIFORM}>",
                                     check=check_learned_policy,
                                     augment=LearnedPolicyAugment.from_reference)
