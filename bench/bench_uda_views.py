"""UDA steps/s with the views augmented batched on the device against PIL in DataLoader workers.

Same model, batches, policies (labelled: cutout; strong: RandAugment) and step function; only
`augment_on` differs. Images/s counts every image a step augments (labelled + two unlabelled
views).

    python bench/bench_uda_views.py [--steps 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

import augssl  # noqa: E402,F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import ignite.distributed as idist  # noqa: E402
from ignite.engine import Engine  # noqa: E402

import main_uda  # noqa: E402
from augssl.config import parse_params  # noqa: E402
from augssl.data.loaders import cycle  # noqa: E402
from augssl.engine.optim import build_optimizer  # noqa: E402
from augssl.engine.session import open_session  # noqa: E402

PARAMS = ("num_labelled_samples=1000;num_validation_samples=1000;batch_size=32;"
          "unlabelled_batch_size=96;strong_policy=randaugment;cutout_size=8")


def steps_per_second(augment_on: str, steps: int, workers: int) -> float:
    config = parse_params(f"{PARAMS};augment_on={augment_on};num_workers={workers}",
                          main_uda.UdaConfig, dataset="FashionMNIST", network="smallcnn")
    session = open_session("bench", config)
    model = session.create_model()
    optimizer = idist.auto_optim(build_optimizer(config, model.parameters()))
    views = (config.policy, config.strong_policy)
    train = session.bundle.train
    labelled, labelled_augments = session.batches(train, session.splits.labelled,
                                                  config.batch_size, train=True,
                                                  policies=views[:1])
    unlabelled, (clean, strong) = session.batches(train, session.splits.unlabelled,
                                                  config.unlabelled_batch_size, train=True,
                                                  policies=views, stream=1)
    prepare = {main_uda.LABELLED: session.preparer(labelled_augments[0]),
               main_uda.CLEAN: session.preparer(clean), main_uda.STRONG: session.preparer(strong)}
    step = main_uda.make_uda_step(model, optimizer, session.precision, config, cycle(unlabelled),
                                  prepare, steps)
    trainer = Engine(step)
    trainer.run(cycle(labelled), max_epochs=1, epoch_length=3)  # warm-up: workers start
    start = time.perf_counter()
    trainer.run(cycle(labelled), max_epochs=1, epoch_length=steps)
    return steps / (time.perf_counter() - start)


def run(steps: int = 60, workers: int = 2) -> dict:
    device = steps_per_second("device", steps, workers)
    workers_rate = steps_per_second("cpu", steps, workers)
    images_per_step = 32 + 2 * 96
    return {"device_steps_per_s": device, "workers_steps_per_s": workers_rate,
            "device_images_per_s": device * images_per_step,
            "workers_images_per_s": workers_rate * images_per_step,
            "ratio": device / workers_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    result = run(args.steps, args.workers)
    print(f"UDA (smallcnn, Fashion-MNIST, 32 + 2x96 images/step, CPU): device augmentation "
          f"{result['device_steps_per_s']:.2f} steps/s ({result['device_images_per_s']:.0f} "
          f"images/s), PIL in {args.workers} workers {result['workers_steps_per_s']:.2f} steps/s "
          f"({result['workers_images_per_s']:.0f} images/s)")
    print(f"UDA device/PIL-workers ratio: {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
