"""Image augmentation: PIL reference operations, batched uint8 tensor versions and policies.

Training scripts use `AugmentSpec` with `build_pil_transform` / `build_batch_transform`;
search code uses the op table (`OP_SPECS`, `op_id`, `arguments_from_fractions`) together with
`apply_ops` / `apply_op` to apply chosen operations to chosen images of a batch.  Pixels that
geometric ops uncover and Cutout erases take the data set's mean colour (`fill_from_mean`).
Policies named by reference, like `policy=aws:<run id>`, resolve through `policy_schemes`, where
the package that provides them registers a `PolicyScheme`.
"""

from augssl.augment.autoaugment_policies import AUTOAUGMENT_MAX_LEVEL, AUTOAUGMENT_POLICY_NAMES
from augssl.augment.batch_transforms import (
    AugmentPlan,
    BatchAutoAugment,
    BatchCompose,
    BatchCutout,
    BatchRandAugment,
    BatchTrivialAugment,
    BatchWeak,
    apply_plan,
)
from augssl.augment.factory import (
    CUTOUT_HALF_SIDE,
    POLICY_NAMES,
    AugmentSpec,
    build_batch_transform,
    build_pil_transform,
)
from augssl.augment.ops import (
    FILL_GREY,
    IDENTITY_ID,
    OP_NAMES,
    OP_SPECS,
    RANDAUGMENT_MAX_MAGNITUDE,
    RANDAUGMENT_OP_NAMES,
    OpKind,
    OpSpec,
    argument_from_fraction,
    arguments_from_fractions,
    fill_from_mean,
    op_id,
    op_spec,
)
from augssl.augment.pil_ops import apply_pil_op
from augssl.augment.pil_transforms import (
    PILAutoAugment,
    PILCompose,
    PILCutout,
    PILRandAugment,
    PILTrivialAugment,
    PILWeak,
)
from augssl.augment.tensor_ops import apply_op, apply_ops

__all__ = [
    "AUTOAUGMENT_MAX_LEVEL",
    "AUTOAUGMENT_POLICY_NAMES",
    "CUTOUT_HALF_SIDE",
    "FILL_GREY",
    "IDENTITY_ID",
    "OP_NAMES",
    "OP_SPECS",
    "POLICY_NAMES",
    "RANDAUGMENT_MAX_MAGNITUDE",
    "RANDAUGMENT_OP_NAMES",
    "AugmentPlan",
    "AugmentSpec",
    "BatchAutoAugment",
    "BatchCompose",
    "BatchCutout",
    "BatchRandAugment",
    "BatchTrivialAugment",
    "BatchWeak",
    "OpKind",
    "OpSpec",
    "PILAutoAugment",
    "PILCompose",
    "PILCutout",
    "PILRandAugment",
    "PILTrivialAugment",
    "PILWeak",
    "apply_op",
    "apply_ops",
    "apply_pil_op",
    "apply_plan",
    "argument_from_fraction",
    "arguments_from_fractions",
    "build_batch_transform",
    "build_pil_transform",
    "fill_from_mean",
    "op_id",
    "op_spec",
]
