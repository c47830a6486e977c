"""Uploads of a run's files to a remote artifact store (an MLflow server, S3, ...) while it trains.

Files are written whole in a local staging folder first (checkpoints by an atomic rename) and
uploaded by one background thread, so training does not wait on the network and the store never
receives a file that is still being written. Files that change while they are uploaded
(TensorBoard's event files) are copied first and the copy is uploaded.
"""

from __future__ import annotations

import os
import queue
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass
class _Upload:
    local: Path
    relative: str  # the file's path inside the run's artifacts
    after: Callable[[], None] | None = None


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


class RemoteArtifacts:
    """Keeps a run's remote artifacts up to date with a local staging folder."""

    def __init__(self, artifact_uri: str, staging: Path):
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        self.artifact_uri = artifact_uri.rstrip("/")
        self.staging = staging
        self._repository = get_artifact_repository(artifact_uri)
        self._uploaded: dict[str, tuple[int, int]] = {}  # file -> signature when it was sent
        self._failed: list[str] = []
        self._jobs: queue.Queue[_Upload | None] = queue.Queue()
        self._copies = Path(tempfile.mkdtemp(prefix="augssl-upload-"))
        self._worker = threading.Thread(target=self._work, name="augssl-artifacts", daemon=True)
        self._worker.start()

    def uri(self, relative: str) -> str:
        return f"{self.artifact_uri}/{relative}"

    def upload(self, relative: str, after: Callable[[], None] | None = None) -> None:
        """Send a finished file of the staging folder; ``after()`` runs once it is stored."""
        local = self.staging / relative
        self._uploaded[relative] = _signature(local)
        self._jobs.put(_Upload(local, relative, after))

    def upload_copy(self, relative_folder: str) -> None:
        """Send the files of a folder that changed since they were last sent, as copies taken
        now (their writer may append to them meanwhile)."""
        folder = self.staging / relative_folder
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(self.staging).as_posix()
            signature = _signature(path)
            if self._uploaded.get(relative) == signature:
                continue
            copy = self._copies / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            partial = copy.with_name(copy.name + ".partial")
            shutil.copyfile(path, partial)
            os.replace(partial, copy)  # an upload of the previous copy reads on from its own
            self._uploaded[relative] = signature
            self._jobs.put(_Upload(copy, relative))

    def download(self, relative: str) -> bool:
        """Fetch a file of the run's artifacts into the staging folder (a run that goes on
        after a crash starts with an empty one); False when the store has no such file."""
        folder = relative.rpartition("/")[0]
        if relative not in self.list(folder or None):
            return False
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        self._repository.download_artifacts(relative, str(self.staging))
        self._uploaded[relative] = _signature(target)
        return True

    def list(self, relative_folder: str | None) -> list[str]:
        return [item.path for item in self._repository.list_artifacts(relative_folder)]

    def delete(self, relative: str) -> None:
        self._repository.delete_artifacts(relative)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._send(job)
            finally:
                self._jobs.task_done()
        self._jobs.task_done()

    def _send(self, job: _Upload) -> None:
        folder = job.relative.rpartition("/")[0] or None
        try:
            self._repository.log_artifact(str(job.local), folder)
        except FileNotFoundError:
            # only a checkpoint is removed before its turn, by a newer one that is queued after it
            return
        except Exception as error:  # noqa: BLE001  (a network error must not stop training)
            self._uploaded.pop(job.relative, None)  # sent again by close()
            self._failed.append(job.relative)
            print(f"warning: could not upload {job.relative} to {self.artifact_uri} ({error}); "
                  "it is retried when the run ends.", file=sys.stderr)
            return
        if job.after is not None:
            try:
                job.after()
            except Exception as error:  # noqa: BLE001
                print(f"warning: after uploading {job.relative} to {self.artifact_uri}: {error}",
                      file=sys.stderr)

    def close(self) -> bool:
        """Wait for the queued uploads, send every file not sent in its present state, stop the
        thread. True when everything reached the store (the staging folder can go)."""
        self._jobs.join()
        self._failed.clear()
        for path in sorted(p for p in self.staging.rglob("*") if p.is_file()):
            relative = path.relative_to(self.staging).as_posix()
            if self._uploaded.get(relative) != _signature(path):
                self.upload(relative)
        self._jobs.put(None)
        self._worker.join()
        shutil.rmtree(self._copies, ignore_errors=True)
        if self._failed:
            print(f"warning: {len(self._failed)} files did not reach {self.artifact_uri}; they "
                  f"are kept in {self.staging}: upload them with `mlflow artifacts log-artifacts`"
                  " or MlflowClient.log_artifacts.", file=sys.stderr)
        return not self._failed
