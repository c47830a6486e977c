"""MLflow and TensorBoard logging for one run; a no-op on every process but rank 0.

mlflow is imported where it is used: an entry that stops on a bad parameter never pays for it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from augssl.config import ConfigError, as_flat_dict
from augssl.engine import checkpoint as ckpt
from augssl.engine.artifacts import RemoteArtifacts

# keys that say what to do with a run rather than what it is: a resumption may change them
NOT_LOGGED = ("resume", "register_model")
TENSORBOARD_DIR = "tensorboard"
HPARAMS_DIR = "hparams"  # under TENSORBOARD_DIR
# how often TensorBoard's events reach the run's artifacts during training (and at checkpoints)
TENSORBOARD_SYNC_SECONDS = 30


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The local folder behind an artifact URI, or None when the store is remote."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def existing_run(run_id: str):
    """The MLflow run of an id; a clear error when the tracking store has no such run."""
    import mlflow

    try:
        return mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ConfigError(f"no MLflow run with id '{run_id}' in the tracking store "
                          f"{mlflow.get_tracking_uri()}: check the id (mlflow ui lists runs) "
                          "or MLFLOW_TRACKING_URI.") from None


class RunTracker:
    """Owns the MLflow run of an entry: params, metrics, TensorBoard events, artifacts.

    Files are written under ``path()``: the run's artifact folder itself on a local store, a
    staging folder on a remote one, whose files ``RemoteArtifacts`` uploads as they are
    published (checkpoints, the best model) and, for the rest, when the run ends.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.run_id: str | None = None
        self.artifact_dir: Path | None = None
        self._remote: RemoteArtifacts | None = None
        self._tensorboard = None
        self._synced_at = 0.0

    def start(self, entry: str, config, continue_run_id: str | None = None) -> None:
        if not self.enabled:
            return
        import mlflow

        launcher_run = os.environ.get("MLFLOW_RUN_ID")
        if continue_run_id and launcher_run and launcher_run != continue_run_id:
            # `mlflow run` opened a fresh run for this resumption: point it at the run that goes on.
            mlflow.tracking.MlflowClient().set_tag(launcher_run, "augssl.continued_in",
                                                   continue_run_id)
            os.environ.pop("MLFLOW_RUN_ID")
        # CPU, memory, disk and network (and GPU with pynvml) as system/ metrics of the run,
        # unless MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING says otherwise
        system_metrics = None if "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING" in os.environ else True
        run = mlflow.start_run(run_id=continue_run_id, log_system_metrics=system_metrics)
        self.run_id = run.info.run_id
        self._log_params(entry, config, resuming=continue_run_id is not None)
        folder = local_artifact_dir(run.info.artifact_uri)
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="augssl-"))
            self._remote = RemoteArtifacts(run.info.artifact_uri, folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.artifact_dir = folder
        (folder / "config.json").write_text(json.dumps(as_flat_dict(config), indent=2) + "\n")
        self.publish("config.json")
        from tensorboardX import SummaryWriter

        self._tensorboard = SummaryWriter(logdir=str(folder / TENSORBOARD_DIR),
                                          flush_secs=TENSORBOARD_SYNC_SECONDS)
        self._synced_at = time.monotonic()
    def _log_params(self, entry: str, config, resuming: bool) -> None:
        """Log the resolved config. `mlflow run` has logged its own -P values already (dataset,
        network, params); where the resolved value differs (`cifar10.3@250` resolves to
        `cifar10`), it is logged as `resolved_<key>` rather than clash with MLflow's."""
        import mlflow

        wanted = {"entry": entry, **{k: str(v) for k, v in as_flat_dict(config).items()
                                     if k not in NOT_LOGGED}}
        existing = mlflow.get_run(self.run_id).data.params

        def logged(key: str) -> str | None:
            return existing.get(f"resolved_{key}", existing.get(key))

        clashes = {k: (logged(k), v) for k, v in wanted.items()
                   if logged(k) is not None and logged(k) != v}
        if clashes and resuming:
            listed = "; ".join(f"{k}: run has {old!r}, now {new!r}" for k, (old, new) in
                               sorted(clashes.items()))
            mlflow.end_run("FAILED")
            raise ConfigError(f"the run {self.run_id} was started with other parameters "
                              f"({listed}). Resume with the parameters of the original run.")
        new = {k: v for k, v in wanted.items() if logged(k) is None}
        new.update({f"resolved_{k}": v for k, (_, v) in clashes.items()})
        if new:
            mlflow.log_params(new)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if not self.enabled:
            return
        import mlflow

        mlflow.log_metrics(metrics, step=step)
        for name, value in metrics.items():
            self._tensorboard.add_scalar(name, value, step)
        if time.monotonic() - self._synced_at >= TENSORBOARD_SYNC_SECONDS:
            self.sync_tensorboard()

    def log_figure(self, figure, name: str) -> None:
        """A matplotlib figure as the artifact ``name`` (a .png); the figure is closed."""
        import matplotlib.pyplot as plt

        try:
            if self.enabled:
                import mlflow

                mlflow.log_figure(figure, name)
        finally:
            plt.close(figure)

    def log_image(self, image, name: str, step: int) -> None:
        """A (C, H, W) image in [0, 1] as the artifact ``name`` and in TensorBoard's images."""
        if not self.enabled:
            return
        import mlflow

        mlflow.log_image((image * 255).round().byte().permute(1, 2, 0).numpy(), name)
        self._tensorboard.add_image(Path(name).stem, image, step)

    def log_histogram(self, tag: str, values, step: int) -> None:
        if self.enabled:
            self._tensorboard.add_histogram(tag, values, step)

    def log_hparams(self, config, results: dict, step: int) -> None:
        """The run's config and its numeric ``results`` for TensorBoard's HParams view, which
        compares runs (one session per run: its tensorboard/hparams folder)."""
        if not self.enabled:
            return
        hparams = {key: value if isinstance(value, (bool, int, float, str)) else str(value)
                   for key, value in as_flat_dict(config).items() if key not in NOT_LOGGED}
        metrics = {key: float(value) for key, value in results.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
        self._tensorboard.add_hparams(hparams, metrics, name=HPARAMS_DIR, global_step=step)

    def path(self, relative: str) -> Path:
        """A local path inside the run's artifacts (its folder is created)."""
        target = self.artifact_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def publish(self, relative: str) -> None:
        """The file at ``path(relative)`` is complete: send it to a remote store now, rather
        than when the run ends, so that a crash does not lose it."""
        if self._remote is not None:
            self._remote.upload(relative)

    def fetch(self, relative: str) -> Path | None:
        """``path(relative)`` when the run has that file (on a remote store, written by an
        attempt before a crash: it is downloaded), else None."""
        target = self.artifact_dir / relative
        if target.is_file() or (self._remote is not None and self._remote.download(relative)):
            return target
        return None

    def save_checkpoint(self, iteration: int, objects: dict) -> str:
        """Write a checkpoint into the run's artifacts; returns where it is stored."""
        path = ckpt.save_checkpoint(self.path(ckpt.CHECKPOINT_DIR), iteration, objects)
        where = str(path)
        if self._remote is not None:
            relative = f"{ckpt.CHECKPOINT_DIR}/{path.name}"
            self._remote.upload(relative, after=self._drop_old_remote_checkpoints)
            where = self._remote.uri(relative)
        self.sync_tensorboard()  # the events up to the point a resumption starts from
        return where

    def _drop_old_remote_checkpoints(self) -> None:
        # runs on the upload thread once a checkpoint is stored whole, never before
        for name in ckpt.in_order(self._remote.list(ckpt.CHECKPOINT_DIR))[:-ckpt.KEEP]:
            self._remote.delete(name)

    def sync_tensorboard(self) -> None:
        """Write out the pending TensorBoard events and, on a remote store, upload them."""
        self._tensorboard.flush()
        if self._remote is not None:
            self._remote.upload_copy(TENSORBOARD_DIR)
        self._synced_at = time.monotonic()

    def finish(self, status: str) -> None:
        if not self.enabled or self.run_id is None:
            return
        import mlflow

        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._remote is not None and self._remote.close():
            shutil.rmtree(self.artifact_dir, ignore_errors=True)
        mlflow.end_run(status)
