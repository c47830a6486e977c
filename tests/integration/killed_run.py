"""Runs an entry script and kills its process with SIGKILL after an iteration, once the tracking
store lists a checkpoint of its run: a crash that leaves no chance to clean up or upload.

    python tests/integration/killed_run.py <iteration> code/<entry>.py <entry arguments>
"""

import os
import runpy
import signal
import sys
import time
from pathlib import Path

CODE = Path(__file__).resolve().parents[2] / "code"


def kill_after(iteration: int) -> None:
    import augssl  # noqa: F401  (first, as in the entry scripts: it sets up OpenMP before torch)
    # isort: split
    import mlflow
    from ignite.engine import Events

    from augssl.engine.trainer import TrainingLoop

    attach = TrainingLoop.attach

    def attach_and_kill(loop):
        attach(loop)

        @loop.trainer.on(Events.ITERATION_COMPLETED(once=iteration))
        def kill(engine):
            deadline = time.monotonic() + 120
            while not mlflow.MlflowClient().list_artifacts(loop.tracker.run_id, "checkpoints"):
                if time.monotonic() > deadline:
                    sys.exit("no checkpoint reached the tracking store in 120 s")
                time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGKILL)

    TrainingLoop.attach = attach_and_kill


if __name__ == "__main__":
    iteration, script, *arguments = sys.argv[1:]
    sys.path.insert(0, str(CODE))
    kill_after(int(iteration))
    sys.argv = [script, *arguments]
    runpy.run_path(script, run_name="__main__")
