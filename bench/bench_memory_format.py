"""FixMatch steps/s with the model in the channels-last memory order against the contiguous order.

The same-labels table's FixMatch step (Fashion-MNIST, 16 labelled + 2 x 112 unlabelled images a
step, augmented on the device); only `channels_last` differs. Both orders are timed in turn,
`--repeats` times each, and the medians compared. Goal: ratio > 1 on CPU cores.

    python bench/bench_memory_format.py [--network smallcnn] [--steps 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

import augssl  # noqa: E402,F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import fixmatch  # noqa: E402
from augssl.config import parse_params  # noqa: E402
from augssl.data.loaders import cycle  # noqa: E402
from augssl.engine.session import open_session  # noqa: E402

PARAMS = "num_labelled_samples=100;num_validation_samples=1000;batch_size=16;mu=7"


def fixmatch_trainer(network: str, channels_last: bool, steps: int):
    config = parse_params(f"{PARAMS};channels_last={str(channels_last).lower()}",
                          fixmatch.FixmatchConfig, dataset="FashionMNIST", network=network)
    parts = fixmatch.build_parts(open_session("bench", config), config)
    trainer, labelled = parts.trainer, parts.labelled
    trainer.run(cycle(labelled), max_epochs=1, epoch_length=3)  # warm-up
    return trainer, labelled


def steps_per_second(trainer, labelled, steps: int) -> float:
    start = time.perf_counter()
    trainer.run(cycle(labelled), max_epochs=1, epoch_length=steps)
    return steps / (time.perf_counter() - start)


def run(network: str = "smallcnn", steps: int = 40, repeats: int = 3) -> dict:
    trainers = {order: fixmatch_trainer(network, order, steps) for order in (True, False)}
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):  # interleaved, so that a slower spell of the machine hits both
        for order, (trainer, labelled) in trainers.items():
            rates[order].append(steps_per_second(trainer, labelled, steps))
    channels_last, contiguous = (statistics.median(rates[order]) for order in (True, False))
    return {"channels_last_steps_per_s": channels_last, "contiguous_steps_per_s": contiguous,
            "ratio": channels_last / contiguous}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="smallcnn")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = run(args.network, args.steps, args.repeats)
    print(f"FixMatch ({args.network}, Fashion-MNIST, 16 + 2x112 images/step): channels-last "
          f"{result['channels_last_steps_per_s']:.2f} steps/s, contiguous "
          f"{result['contiguous_steps_per_s']:.2f} steps/s, ratio {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
