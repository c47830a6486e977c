"""AutoAugment (CIFAR-10 policy) throughput on 32x32 RGB images, all in one process on the CPU.

Measures images per second of
  (a) torchvision.transforms.AutoAugment on PIL images, one image at a time,
  (b) augssl's batched uint8 tensor AutoAugment (per-image sub-policies) on batches,
  (c) augssl's PIL AutoAugment, one image at a time (optional),
and prints the ratio (b)/(a); the goal is at least 3x.  The methods are timed in interleaved
rounds and the best round of each is kept, so a burst of load from other processes penalises
all of them alike.  torch keeps its default intra-op thread count.

Run as a script it defaults OMP_WAIT_POLICY to PASSIVE (set it to override): with the default
spinning policy, every multi-threaded torch op stalls for milliseconds whenever other processes
keep the cores busy, which measures the machine's load rather than the code.

    python bench/bench_autoaugment.py [--num-images 4096] [--batch-size 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __name__ == "__main__":  # must precede the first torch import to reach OpenMP
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

from augssl.augment import BatchAutoAugment, PILAutoAugment  # noqa: E402

RATIO_GOAL = 3.0
IMAGE_SIZE = 32


def make_images(num_images: int, seed: int = 0) -> torch.Tensor:
    """Smooth random colour images with some texture, uint8 (N, 3, 32, 32)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_images, 3, 6, 6, generator=generator) * 255
    smooth = F.interpolate(coarse, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                           align_corners=False)
    texture = torch.randn(num_images, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * 12
    return (smooth + texture).clamp(0, 255).round().to(torch.uint8)


def _to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in images]


def _seconds(work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def run(
    num_images: int = 4096,
    batch_size: int = 512,
    rounds: int = 3,
    include_ours_pil: bool = True,
    seed: int = 0,
) -> dict:
    """Time the methods; returns images/s per method, the batched/torchvision ratio and context."""
    if num_images < 1 or batch_size < 1 or rounds < 1:
        raise ValueError(
            "num_images, batch_size and rounds must be >= 1, got "
            f"{num_images}, {batch_size}, {rounds}"
        )
    images = make_images(num_images, seed)
    pil_images = _to_pil(images)
    batches = list(images.split(batch_size))

    torchvision_aa = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)
    batched_aa = BatchAutoAugment("cifar10")
    ours_pil_aa = PILAutoAugment("cifar10", random.Random(seed))
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # torchvision's AutoAugment draws from the global generator

    methods: dict[str, Callable[[], None]] = {
        "torchvision_pil": lambda: [torchvision_aa(image) for image in pil_images],
        "batched_tensor": lambda: [batched_aa(batch, generator) for batch in batches],
    }
    if include_ours_pil:
        methods["augssl_pil"] = lambda: [ours_pil_aa(image) for image in pil_images]

    warm_up = min(num_images, 256)
    for image in pil_images[:warm_up]:
        torchvision_aa(image)
        ours_pil_aa(image)
    batched_aa(batches[0], generator)

    best = {name: float("inf") for name in methods}
    for _ in range(rounds):
        for name, work in methods.items():
            best[name] = min(best[name], _seconds(work))

    rates = {name: num_images / seconds for name, seconds in best.items()}
    return {
        "num_images": num_images,
        "batch_size": batch_size,
        "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "torchvision_pil_images_per_s": rates["torchvision_pil"],
        "batched_images_per_s": rates["batched_tensor"],
        "augssl_pil_images_per_s": rates.get("augssl_pil"),
        "ratio_batched_over_torchvision": rates["batched_tensor"] / rates["torchvision_pil"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-augssl-pil", action="store_true",
                        help="do not time augssl's PIL version")
    args = parser.parse_args()
    result = run(args.num_images, args.batch_size, args.rounds,
                 include_ours_pil=not args.skip_augssl_pil)
    print(
        f"{result['num_images']} images of 32x32 RGB, batch size {result['batch_size']}, "
        f"torch threads {result['torch_threads']}, OMP_WAIT_POLICY {result['omp_wait_policy']}, "
        f"best of {result['rounds']} rounds, 1-min load average {result['load_average_1min']:.2f}"
    )
    rows = [
        ("(a) torchvision AutoAugment, PIL, one at a time", result["torchvision_pil_images_per_s"]),
        ("(b) augssl batched tensor AutoAugment", result["batched_images_per_s"]),
        ("(c) augssl PIL AutoAugment, one at a time", result["augssl_pil_images_per_s"]),
    ]
    for label, rate in rows:
        if rate is not None:
            print(f"{label + ':':50s} {rate:9.0f} images/s")
    print(
        "autoaugment batched/torchvision-PIL ratio: "
        f"{result['ratio_batched_over_torchvision']:.1f}x "
        f"(goal >= {RATIO_GOAL:g}x)"
    )


if __name__ == "__main__":
    main()
