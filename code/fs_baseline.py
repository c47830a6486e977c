"""RealMix's fully supervised baseline (the original's fs_baseline): the labelled images alone,
with the same model, augmentation, Adam, decoupled weight decay, EMA and budget as `realmix`.

    python code/fs_baseline.py cifar10.3@250-500 wideresnet --params "num_epochs=64"
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import torch

from realmix import main

if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main("fs_baseline")
