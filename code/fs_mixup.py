"""RealMix's supervised MixUp baseline (the original's fs_mixup): the labelled batch mixed with
itself (a lambda per image, lambda ~ Beta(beta, beta), lambda >= 0.5), otherwise trained
exactly as `fs_baseline`.

    python code/fs_mixup.py cifar10.3@250-500 wideresnet --params "beta=0.75"
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import torch

from realmix import main

if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main("fs_mixup")
