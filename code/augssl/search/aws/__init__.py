"""AWS AutoAugment (Tian et al., 2020): search space, learned pair policy, PPO and weight sharing.

Search space (`space`): 36 operations, `SEARCH_SPACE[i]` a `SearchOperation(op, level)` named
like "Rotate@6" (`OPERATION_NAMES`, `operation_index`).  A sub-policy is an ordered pair of
indices, both applied, op1 first:

    apply_pairs(images_uint8, first, second, generator=None, negate=None) -> images
    plan_pairs(first, second, generator=None, negate=None) -> augment.AugmentPlan
    apply_pair_pil(image, first, second, negate=None, rng=None) -> PIL image (the reference)

Policy (`policy`): `PairPolicy()` (an nn.Module, uniform at creation) with
`first_probabilities()`, `second_probabilities()`, `joint()`, `log_joint()`,
`log_prob(first, second)`, `entropy()`, `sample(count, generator, device)`, `top_k(k)`,
`to_dict()` / `PairPolicy.from_dict()` and `transform()`.  Files: `save_policy(policy, path)`,
`load_policy(path)`, `load_policy_transform(path)`.  The transform, `PairPolicyTransform`, is
called as `transform(images_uint8, generator)`; `transform.augment(...)` also returns the pairs
drawn, `pair_counts(first, second)` turns them into the (36, 36) histogram an evaluation
reports, `draw_sub_policies(joint, count, generator)` draws the few pairs an evaluation tests
when it tests a policy of sub-policies, and `enlarge_batch(images, targets, transform,
multiplicity, generator)` builds an Enlarge Batch.

PPO (`ppo`): `PolicyPPO(policy, PPOConfig(...))`; `update([PolicyEvaluation(counts, reward),
...])` runs one policy update and returns its statistics; `state_dict()` / `load_state_dict()`
cover the policy, its Adam state and the `EMABaseline`.

Weight sharing (`shared_weights`): `fork_model(shared, optimizer_factory, device)` returns a
`ForkedModel(model, optimizer)` whose optimiser trains the copy; `best_mean_reward(accuracies)`
is the reward of one evaluation (mean of the best two validation accuracies).

Figures (`augssl.search.aws.figures`, imported on its own so that this package does not load
matplotlib): `save_policy_heatmap(policy, path)` draws P(op1, op2) with every operation named,
`save_entropy_curve(entropies, path)` the policy's entropy over the search loops.

Training with a learned policy (`learned`): importing this package registers the `aws:` policy
scheme (`augssl.augment.policy_schemes`), so that every entry takes `policy=aws:<run id or
policy.json>`: `resolve_learned_policy(reference)` finds the policy file, `LearnedPolicyAugment`
applies weak -> one learned pair per image -> Cutout.

The search's machinery, which `code/aws_search.py` wires (each module imported on its own, since
they load the engine): `training_step` has the training step of both stages (`PairAugment`,
`pair_step`); `policy_evaluation` has one evaluation, `PolicyEvaluator`, which fine-tunes a copy
of the shared weights through the engine's `TrainingLoop`; `executors` runs the evaluations of a
loop in the search process or on Ray workers (`open_executor`); `child_runs` logs each
evaluation as an MLflow child run of the search run.

One search loop, as the entry script wires it:

    transform = policy.transform()
    fork = fork_model(shared_model, lambda params: torch.optim.SGD(params, lr=...))
    counts = 0
    for images, targets in train_loader:          # fine-tune the copy
        batch = transform.augment(images, generator)
        counts = counts + pair_counts(batch.first, batch.second)
        ...                                       # step fork.optimizer on fork.model
    reward = best_mean_reward(validation_accuracies)
    stats = ppo.update([PolicyEvaluation(counts, reward)])
"""

from augssl.augment.policy_schemes import register_policy_scheme
from augssl.search.aws.learned import LEARNED_POLICY_SCHEME
from augssl.search.aws.policy import (
    NUM_PAIRS,
    AugmentedPairs,
    EnlargedBatch,
    PairPolicy,
    PairPolicyTransform,
    SubPolicy,
    draw_sub_policies,
    enlarge_batch,
    load_policy,
    load_policy_transform,
    pair_counts,
    save_policy,
)
from augssl.search.aws.ppo import (
    EMABaseline,
    PolicyEvaluation,
    PolicyPPO,
    PPOConfig,
    clipped_surrogate,
    kl_divergence,
)
from augssl.search.aws.shared_weights import ForkedModel, best_mean_reward, fork_model
from augssl.search.aws.space import (
    LEVEL_SCALE,
    NUM_OPERATIONS,
    OPERATION_NAMES,
    SEARCH_LEVELS,
    SEARCH_SPACE,
    SearchOperation,
    apply_pair_pil,
    apply_pairs,
    operation_arguments,
    operation_index,
    plan_pairs,
)

__all__ = [
    "LEVEL_SCALE",
    "NUM_OPERATIONS",
    "NUM_PAIRS",
    "OPERATION_NAMES",
    "SEARCH_LEVELS",
    "SEARCH_SPACE",
    "AugmentedPairs",
    "EMABaseline",
    "EnlargedBatch",
    "ForkedModel",
    "PPOConfig",
    "PairPolicy",
    "PairPolicyTransform",
    "PolicyEvaluation",
    "PolicyPPO",
    "SearchOperation",
    "SubPolicy",
    "apply_pair_pil",
    "apply_pairs",
    "best_mean_reward",
    "clipped_surrogate",
    "draw_sub_policies",
    "enlarge_batch",
    "fork_model",
    "kl_divergence",
    "load_policy",
    "load_policy_transform",
    "operation_arguments",
    "operation_index",
    "pair_counts",
    "plan_pairs",
    "save_policy",
]

register_policy_scheme(LEARNED_POLICY_SCHEME)  # policy=aws:<run id, policy.json or uniform>
