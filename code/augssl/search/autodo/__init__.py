"""AutoDO: learned augmentation and loss for biased, noisy training data (Gudovskiy et al., 2021).

Pieces:

- :class:`AffineAugment` (``augment_model``): 7 learned affine operations, ``SHA`` (one
  parameter set) or ``SEP`` (one per training image); :func:`affine_warp` is the functional
  form, :func:`sep_memory_bytes` sizes a SEP table.
- :class:`LossModel` (``loss_model``): per-image weights and soft labels, modes ``NONE``,
  ``WGHT``, ``SOFT``, ``BOTH``; :func:`loss_memory_bytes` sizes its tables.
- :func:`implicit_hypergradient` / :func:`network_hypergradient` (``hypergrad``): Neumann-series
  implicit differentiation over the weight matrix of the classifier's last layer.
- :class:`HyperOptimizer` and :func:`hyper_passes_due` (``hyperopt``): row-wise RMSprop over
  the learned tables, and the schedule: after the warm epochs, a hyper pass before every
  training pass.
- The biased data itself comes from :func:`augssl.data.bias.make_biased_split`;
  :func:`draw_biased_split` (``training_set``) draws it from a smaller class-balanced pool when
  asked, and :class:`TrainingRows` maps a loader's indices to table rows and noisy labels.
- :func:`noisy_weight_auc` and :func:`augment_parameters` (``diagnostics``) read the learned
  tables; ``figures`` plots them (imported on its own: it loads matplotlib).

Rows of the per-image tables are positions ``0 .. N-1`` in the biased training set
(``BiasedSplit.train_indices``), so the training loader must yield each image's position along
with the image (``index`` below). Images reach the augmentation as float tensors normalised by
the data set's mean and std; the RAND/AUTO baselines use ``augssl.augment.build_batch_transform``
on uint8 batches instead and need nothing from here.

One training run, in outline (the original's epoch loop: ``hyperHesTrain``, then
``innerTrain``)::

    split = make_biased_split(train_targets, K, num_validation, IR, NR, seed, run)
    augment = AffineAugment("SEP", num_images=len(split))           # or AffineAugment("SHA")
    loss_model = LossModel("BOTH", torch.as_tensor(split.train_targets), K,
                           symmetric=IR > 1 or NR > 0)          # the original's sym
    hyper_opt = HyperOptimizer([*augment.parameters(), *loss_model.parameters()], lr=0.05)
    generator = torch.Generator(device).manual_seed(seed)

    for epoch in range(1, epochs + 1):
        if hyper_passes_due(epoch, warm_epochs):          # hyper pass: learn the tables
            model.eval()                                  # the network is held fixed
            for (images, targets, index), (val_images, val_targets) in zip(hyper_loader,
                                                                            val_loader):
                step = network_hypergradient(model, augment, loss_model, images, targets,
                                             index, val_images, val_targets, generator,
                                             terms=5, alpha=0.01)
                hyper_opt.step(step.slices, step.grads)
        model.train()                                     # training pass: every epoch
        for images, targets, index in train_loader:
            images = augment(images, index, generator)
            loss = loss_model(model(images), targets, index)
            ...  # backward + SGD step on the model (the tables are read as constants)

Checkpoints: ``augment.state_dict()``, ``loss_model.state_dict()`` and
``hyper_opt.state_dict()`` hold all learned state (tensors and numbers only, so they load with
``torch.load(weights_only=True)``); restore with the matching ``load_state_dict`` calls on
objects built with the same modes and split. The generator's state
(``generator.get_state()``) makes a resumed run draw the same augmentations.
"""

from augssl.search.autodo.augment_model import (
    AFFINE_OPS,
    AUGMENT_MODES,
    OP_RANGES,
    AffineAugment,
    affine_warp,
    sep_memory_bytes,
)
from augssl.search.autodo.diagnostics import (
    augment_parameters,
    noisy_weight_auc,
    noisy_weight_auc_within_class,
)
from augssl.search.autodo.hypergrad import (
    DEFAULT_NEUMANN_ALPHA,
    DEFAULT_NEUMANN_TERMS,
    HyperGradient,
    implicit_hypergradient,
    network_hypergradient,
)
from augssl.search.autodo.hyperopt import DEFAULT_HYPER_LR, HyperOptimizer, hyper_passes_due
from augssl.search.autodo.loss_model import (
    LABEL_SMOOTHING,
    LOSS_MODES,
    LossModel,
    loss_memory_bytes,
)
from augssl.search.autodo.rows import RowSlice, take_rows
from augssl.search.autodo.training_set import TrainingRows, draw_biased_split

__all__ = [
    "AFFINE_OPS",
    "AUGMENT_MODES",
    "DEFAULT_HYPER_LR",
    "DEFAULT_NEUMANN_ALPHA",
    "DEFAULT_NEUMANN_TERMS",
    "LABEL_SMOOTHING",
    "LOSS_MODES",
    "OP_RANGES",
    "AffineAugment",
    "HyperGradient",
    "HyperOptimizer",
    "LossModel",
    "RowSlice",
    "TrainingRows",
    "affine_warp",
    "augment_parameters",
    "draw_biased_split",
    "hyper_passes_due",
    "implicit_hypergradient",
    "loss_memory_bytes",
    "network_hypergradient",
    "noisy_weight_auc",
    "noisy_weight_auc_within_class",
    "sep_memory_bytes",
    "take_rows",
]
