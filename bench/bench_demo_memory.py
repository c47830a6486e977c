"""Peak resident memory of the demo's main job (UDA2 on Fashion-MNIST), against a process that
only imports the same libraries (the floor no training code can go under), measured in the same
run.

    python bench/bench_demo_memory.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

from demo import UDA2_PARAMS  # noqa: E402

IMPORTS_ONLY = "import torch, torchvision, ignite, mlflow, tensorboardX, matplotlib"


def peak_rss_mib(command: list[str], env: dict) -> float:
    """Peak RSS of one child process (the largest of its own process tree's members)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024.0


def run() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db"}
        floor = peak_rss_mib([sys.executable, "-c", IMPORTS_ONLY], env)
        demo = peak_rss_mib([sys.executable, "code/main_uda2.py", "FashionMNIST", "smallcnn",
                             "--params", UDA2_PARAMS], env)
    return {"demo_peak_mib": demo, "imports_only_mib": floor, "ratio": demo / floor}


def main() -> None:
    result = run()
    print(f"demo training peak RSS: {result['demo_peak_mib']:.0f} MiB; "
          f"libraries imported only: {result['imports_only_mib']:.0f} MiB")
    print(f"demo peak memory / import floor ratio: {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
