"""Proximal Policy Optimisation of a `PairPolicy` from evaluated fine-tunings.

One policy update takes the evaluations of one search loop.  Each evaluation is the histogram
of the pairs sampled while a copy of the shared weights was fine-tuned, and the reward that
copy earned.  Its advantage A = r - b (b: an exponential moving average of past rewards) is
spread over the pairs in proportion to their share of the histogram, so the surrogate is

    J = mean over evaluations of  sum over pairs
            w(pair) * min(rho * A, clip(rho, 1 - eps, 1 + eps) * A)

with rho = P_new(pair) / P_old(pair) against the policy at the start of the update.  A few Adam
steps maximise J plus a small entropy bonus; the update stops early once the KL divergence
between the policy at the start of the update and the current one exceeds `max_kl`.  With only
1296 pairs that KL is computed exactly over the whole joint distribution (no sample estimate).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from augssl.search.aws.policy import NUM_PAIRS, PairPolicy, pair_counts
from augssl.search.aws.space import NUM_OPERATIONS


@dataclass(frozen=True)
class PolicyEvaluation:
    """Pairs sampled during one fine-tuning ((36, 36) counts, or 1296 flat) and its reward."""

    pair_counts: torch.Tensor
    reward: float

    def __post_init__(self) -> None:
        counts = torch.as_tensor(self.pair_counts).detach().to(device="cpu", dtype=torch.float64)
        if counts.numel() != NUM_PAIRS:
            raise ValueError(
                f"pair_counts must be a ({NUM_OPERATIONS}, {NUM_OPERATIONS}) histogram of sampled "
                f"pairs, got shape {tuple(counts.shape)}; build it with pair_counts(first, second)"
            )
        if not torch.isfinite(counts).all() or (counts < 0).any() or counts.sum() <= 0:
            raise ValueError(
                "pair_counts must be finite, non-negative and not all zero (the fine-tuning "
                "sampled no pair?)"
            )
        if not math.isfinite(float(self.reward)):
            raise ValueError(
                f"the reward must be a finite number (a validation accuracy), got {self.reward}"
            )
        object.__setattr__(self, "pair_counts", counts.reshape(NUM_OPERATIONS, NUM_OPERATIONS))
        object.__setattr__(self, "reward", float(self.reward))

    @classmethod
    def from_pairs(
        cls, first: torch.Tensor, second: torch.Tensor, reward: float
    ) -> PolicyEvaluation:
        """From the sampled pairs themselves (index tensors into `SEARCH_SPACE`)."""
        return cls(pair_counts(first, second), reward)

    @property
    def pair_weights(self) -> torch.Tensor:
        """Share of each pair among the samples, (36, 36) summing to 1."""
        return self.pair_counts / self.pair_counts.sum()


class EMABaseline:
    """Exponential moving average of rewards, the baseline b of the advantage r - b.

    The average moves once per policy update, with the mean reward of that update's
    evaluations, so its memory (about 1 / (1 - decay) updates) does not depend on how many
    evaluations ran in parallel.  Before the first update it takes the first mean reward.
    """

    def __init__(self, decay: float = 0.9) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(
                f"the baseline decay must lie in [0, 1) (0.9 in AWS AutoAugment), got {decay}"
            )
        self.decay = decay
        self.value: float | None = None

    def advantages(self, rewards: Sequence[float]) -> list[float]:
        """r - b for every reward, b the current average (the rewards' mean before any update)."""
        _check_rewards(rewards)
        baseline = self.value if self.value is not None else sum(rewards) / len(rewards)
        return [reward - baseline for reward in rewards]

    def update(self, rewards: Sequence[float]) -> float:
        """Fold the mean of `rewards` into the average; returns the new baseline."""
        _check_rewards(rewards)
        mean = sum(rewards) / len(rewards)
        self.value = (
            mean if self.value is None else self.decay * self.value + (1.0 - self.decay) * mean
        )
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.value = None if state["value"] is None else float(state["value"])


def _check_rewards(rewards: Sequence[float]) -> None:
    if len(rewards) == 0:
        raise ValueError("a policy update needs at least one evaluated reward, got none")


@dataclass(frozen=True)
class PPOConfig:
    """AWS AutoAugment's settings: clip 0.2, Adam lr 0.1 with betas (0.5, 0.999), baseline 0.9."""

    clip: float = 0.2
    learning_rate: float = 0.1
    betas: tuple[float, float] = (0.5, 0.999)
    inner_steps: int = 5
    entropy_coefficient: float = 1e-4
    max_kl: float = 0.02
    baseline_decay: float = 0.9

    def __post_init__(self) -> None:
        if self.clip <= 0:
            raise ValueError(f"PPOConfig.clip must be positive (0.2 in AWS), got {self.clip}")
        if self.inner_steps < 1:
            raise ValueError(
                f"PPOConfig.inner_steps must be at least 1 Adam step, got {self.inner_steps}"
            )
        if self.max_kl <= 0:
            raise ValueError(
                f"PPOConfig.max_kl must be positive (e.g. 0.01..0.05), got {self.max_kl}"
            )
        if self.entropy_coefficient < 0:
            raise ValueError(
                f"PPOConfig.entropy_coefficient must be >= 0, got {self.entropy_coefficient}"
            )


def clipped_surrogate(
    log_ratio: torch.Tensor, advantages: torch.Tensor, pair_weights: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO's clipped objective, to maximise.

    log_ratio: (36, 36) log P_new - log P_old; advantages: (E,); pair_weights: (E, 36, 36), each
    evaluation's sampled-pair shares.  Once a pair's ratio leaves [1 - clip, 1 + clip] in the
    direction its advantage favours, its term is constant and contributes no gradient.
    """
    ratio = log_ratio.exp().unsqueeze(0)
    advantage = advantages.view(-1, 1, 1)
    unclipped = ratio * advantage
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantage
    return (pair_weights * torch.minimum(unclipped, clipped)).sum(dim=(1, 2)).mean()


def kl_divergence(old_log_joint: torch.Tensor, new_log_joint: torch.Tensor) -> torch.Tensor:
    """KL(old || new) between two joint distributions given as (36, 36) log-probabilities."""
    return (old_log_joint.exp() * (old_log_joint - new_log_joint)).sum()


class PolicyPPO:
    """Owns the policy's Adam optimiser and reward baseline; `update` runs one PPO update."""

    def __init__(self, policy: PairPolicy, config: PPOConfig | None = None) -> None:
        self.policy = policy
        self.config = config if config is not None else PPOConfig()
        self.baseline = EMABaseline(self.config.baseline_decay)
        self.optimizer = torch.optim.Adam(
            policy.parameters(), lr=self.config.learning_rate, betas=self.config.betas
        )

    def update(self, evaluations: Sequence[PolicyEvaluation]) -> dict[str, float]:
        """One PPO update from the evaluations of a search loop.

        Returns kl (final KL(old || new)), entropy (after the update), steps (Adam steps taken),
        early_stopped (1.0 when the KL limit cut the update short), mean_advantage, mean_reward
        and baseline (after folding in this update's rewards).
        """
        if len(evaluations) == 0:
            raise ValueError("a policy update needs at least one PolicyEvaluation, got none")
        rewards = [evaluation.reward for evaluation in evaluations]
        device = self.policy.first_logits.device
        advantages = torch.tensor(
            self.baseline.advantages(rewards), dtype=torch.float32, device=device
        )
        weights = torch.stack([evaluation.pair_weights for evaluation in evaluations]).to(
            device=device, dtype=torch.float32
        )
        old_log_joint = self.policy.log_joint().detach()
        steps, early_stopped = 0, False
        for _ in range(self.config.inner_steps):
            log_joint = self.policy.log_joint()
            if steps > 0 and (
                float(kl_divergence(old_log_joint, log_joint.detach())) > self.config.max_kl
            ):
                early_stopped = True
                break
            objective = clipped_surrogate(
                log_joint - old_log_joint, advantages, weights, self.config.clip
            )
            loss = -(objective + self.config.entropy_coefficient * self.policy.entropy())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            steps += 1
        with torch.no_grad():
            kl = float(kl_divergence(old_log_joint, self.policy.log_joint()))
            entropy = float(self.policy.entropy())
        return {
            "kl": kl,
            "entropy": entropy,
            "steps": steps,
            "early_stopped": float(early_stopped),
            "mean_advantage": float(advantages.mean()),
            "mean_reward": sum(rewards) / len(rewards),
            "baseline": self.baseline.update(rewards),
        }

    def state_dict(self) -> dict[str, Any]:
        """A snapshot: later updates do not alter it (torch's own state dicts share the live
        tensors, and `load_state_dict` would then tie two optimisers to one Adam state)."""
        return copy.deepcopy(
            {
                "policy": self.policy.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline.state_dict(),
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)  # the optimiser would otherwise adopt the caller's tensors
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])
