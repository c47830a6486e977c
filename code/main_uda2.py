"""UDA with consistency on the labelled images too (the "updated version" of UDA):
loss = supervised + consistency_lambda * (consistency(unlabelled) + consistency(labelled)).
TSA is off by default; everything else is as in main_uda. The labelled images' strong view joins
main_uda's single forward pass, so the four views are one BatchNorm batch (the original forwards
each view on its own; the joint pass is the official UDA code's way, extended to one more view).

    python code/main_uda2.py CIFAR10 fastresnet --params "num_epochs=100;learning_rate=0.08"
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

from dataclasses import dataclass
from functools import partial

import torch

from augssl.config import spec
from augssl.engine.entry import launch
from main_uda import UdaConfig, training

ENTRY = "main_uda2"


@dataclass(frozen=True)
class Uda2Config(UdaConfig):
    labelled_consistency: bool = spec(True, "also apply consistency to the labelled images")
    with_TSA: bool = spec(False, "Training Signal Annealing of the supervised loss")


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    launch(ENTRY, Uda2Config, partial(training, entry=ENTRY))
