"""One trial: its entry script in a subprocess, writing into the child run the sweep made for it.

The entry finds that run through MLFLOW_RUN_ID, as under `mlflow run`, and ends it FINISHED or
FAILED itself. Whenever the process fails (refused params, a crash, a kill), the run is marked
FAILED here with the tail of the process's stderr as its note, so the reason shows in the MLflow
UI; stdout and stderr are kept in the run's artifacts under sweep/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from augssl.analysis.entries import script_path
from augssl.analysis.spec import Trial

NOTE_TAG = "mlflow.note.content"
NOTE_CHARS = 4000
LOG_FOLDER = "sweep"


@dataclass(frozen=True)
class TrialTask:
    trial: Trial
    run_id: str
    resume: bool
    tracking_uri: str
    cwd: str
    """The sweep's working folder: relative paths in params and the tracking URI mean the same."""
    params: str = ""
    """The trial's params with the run ids it takes (``Trial.with_run_ids``); empty: its own."""

    def command(self) -> list[str]:
        params = (self.params or self.trial.params) + (
            f";resume={self.run_id}" if self.resume else "")
        return [sys.executable, str(script_path(self.trial.entry)), self.trial.dataset,
                self.trial.network, "--params", params]


def fail_run(client, run_id: str, reason: str, detail: str = "") -> None:
    """End the run FAILED, its note saying ``reason`` and the end of ``detail`` (e.g. stderr)."""
    note = reason
    if detail:
        note += f"\n\n```\n{detail[-(NOTE_CHARS - len(reason)):]}\n```"
    client.set_tag(run_id, NOTE_TAG, note)
    client.set_terminated(run_id, "FAILED")


def run_trial(task: TrialTask) -> None:
    """Run the trial to its end and say how its run ended."""
    from mlflow import MlflowClient  # here: a spec refused before any run never pays for MLflow

    env = {**os.environ, "MLFLOW_TRACKING_URI": task.tracking_uri, "MLFLOW_RUN_ID": task.run_id}
    client = MlflowClient(task.tracking_uri)
    with tempfile.TemporaryDirectory(prefix="augssl-trial-") as folder:
        stdout_path, stderr_path = Path(folder) / "stdout.log", Path(folder) / "stderr.log"
        with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
            code = subprocess.run(task.command(), cwd=task.cwd, env=env, stdout=stdout,
                                  stderr=stderr, stdin=subprocess.DEVNULL).returncode
        client.log_artifact(task.run_id, str(stdout_path), LOG_FOLDER)
        client.log_artifact(task.run_id, str(stderr_path), LOG_FOLDER)
        if code != 0:
            fail_run(client, task.run_id, f"{task.trial.entry} exited with code {code}:",
                     stderr_path.read_text(errors="replace").strip())
    status = client.get_run(task.run_id).info.status
    print(f"sweep: {task.trial.label}: {status} (run {task.run_id})", file=sys.stderr, flush=True)
    return status
