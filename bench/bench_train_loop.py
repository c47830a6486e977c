"""Steps/s of the `train` entry's ignite loop against a plain PyTorch loop on the same batches.

Both loops run the same model, optimiser, schedule, batches (Fashion-MNIST on the device) and
augmentation; the ignite side carries every handler `train` attaches (schedule, NaN guard, batch
logging, checkpoint and evaluation triggers). Goal: ratio >= 0.95.

    python bench/bench_train_loop.py [--steps 150] [--repeats 3]
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ignite.engine import Engine  # noqa: E402

import train  # noqa: E402
from augssl.config import parse_params  # noqa: E402
from augssl.data.loaders import BatchPreparer, DeviceBatches, images_as_tensor  # noqa: E402
from augssl.data.sources import load_dataset  # noqa: E402
from augssl.engine.amp import Precision  # noqa: E402
from augssl.engine.optim import build_optimizer, build_scheduler  # noqa: E402
from augssl.engine.tracking import RunTracker  # noqa: E402
from augssl.engine.trainer import TrainingLoop  # noqa: E402
from augssl.models import build_model  # noqa: E402


def _setup(config, bundle, images, targets, steps):
    torch.manual_seed(0)
    model = build_model(config.network, len(bundle.classes), bundle.channels)
    optimizer = build_optimizer(config, model.parameters())
    scheduler = build_scheduler(config, optimizer, steps)
    batches = DeviceBatches(images, targets, np.arange(len(targets)), config.batch_size,
                            shuffle=True, drop_last=True, seed=0)
    prepare = BatchPreparer(bundle.mean, bundle.std, torch.device("cpu"))
    return model, optimizer, scheduler, batches, prepare


def time_ignite(config, bundle, images, targets, steps: int) -> float:
    model, optimizer, scheduler, batches, prepare = _setup(config, bundle, images, targets, steps)
    precision = Precision("off", torch.device("cpu"))
    trainer = Engine(train.make_step(model, optimizer, prepare, precision, 0.0))
    TrainingLoop(config=config, trainer=trainer, model=model, optimizer=optimizer,
                 scheduler=scheduler, precision=precision, tracker=RunTracker(enabled=False),
                 class_names=list(bundle.classes), prepare_eval=prepare).attach()
    start = time.perf_counter()
    trainer.run(batches, max_epochs=1, epoch_length=steps)
    return steps / (time.perf_counter() - start)


def time_plain(config, bundle, images, targets, steps: int) -> float:
    model, optimizer, scheduler, batches, prepare = _setup(config, bundle, images, targets, steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for step, (x, y, _) in enumerate(batches, start=1):
        if step > steps:
            break
        model.train()
        loss = loss_fn(model(prepare(x, step)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return steps / (time.perf_counter() - start)


def run(steps: int = 150, repeats: int = 3, network: str = "smallcnn") -> dict:
    config = parse_params("batch_size=128;log_every=10;checkpoint_every=100000;eval_every=1000",
                          train.TrainConfig, dataset="FashionMNIST", network=network)
    bundle = load_dataset("FashionMNIST")
    images = images_as_tensor(bundle.train.images)
    targets = torch.as_tensor(bundle.train.targets)
    time_plain(config, bundle, images, targets, 10)  # warm-up (allocator, kernels)
    ignite_rates, plain_rates = [], []
    for _ in range(repeats):  # interleaved so drift in machine load hits both sides alike
        plain_rates.append(time_plain(config, bundle, images, targets, steps))
        ignite_rates.append(time_ignite(config, bundle, images, targets, steps))
    ignite_rate, plain_rate = statistics.median(ignite_rates), statistics.median(plain_rates)
    return {"ignite_steps_per_s": ignite_rate, "plain_steps_per_s": plain_rate,
            "ratio": ignite_rate / plain_rate, "batch_size": config.batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = run(args.steps, args.repeats)
    print(f"train loop (smallcnn, Fashion-MNIST, batch {result['batch_size']}, CPU): "
          f"ignite {result['ignite_steps_per_s']:.1f} steps/s, "
          f"plain PyTorch {result['plain_steps_per_s']:.1f} steps/s")
    print(f"train loop ignite/plain ratio: {result['ratio']:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
