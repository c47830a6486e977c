"""MLflow and TensorBoard logging for one run; a no-op on every process but rank 0.

mlflow is imported where it is used: an entry that stops on a bad parameter never pays for it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse


from augssl.config import ConfigError, as_flat_dict


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The local folder behind an artifact URI, or None when the store is remote."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def run_artifact_dir(run_id: str) -> Path:
    """Local artifact folder of an existing run; a clear error when the run does not exist."""
    import mlflow

    try:
        run = mlflow.tracking.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ConfigError(f"no MLflow run with id '{run_id}' in the tracking store "
                          f"{mlflow.get_tracking_uri()}: check the id (mlflow ui lists runs) "
                          "or MLFLOW_TRACKING_URI.") from None
    folder = local_artifact_dir(run.info.artifact_uri)
    if folder is None:
        raise ConfigError(f"run {run_id} keeps its artifacts remotely ({run.info.artifact_uri}); "
                          "download its checkpoints and pass resume=<checkpoint path>.")
    return folder


class RunTracker:
    """Owns the MLflow run of an entry: params, metrics, TensorBoard events, artifacts."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.run_id: str | None = None
        self.artifact_dir: Path | None = None
        self._upload_on_close = False
        self._tensorboard = None

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
        run = mlflow.start_run(run_id=continue_run_id)
        self.run_id = run.info.run_id
        self._log_params(entry, config, resuming=continue_run_id is not None)
        folder = local_artifact_dir(run.info.artifact_uri)
        if folder is None:
            folder, self._upload_on_close = Path(tempfile.mkdtemp(prefix="augssl-")), True
        folder.mkdir(parents=True, exist_ok=True)
        self.artifact_dir = folder
        (folder / "config.json").write_text(json.dumps(as_flat_dict(config), indent=2) + "\n")
        from tensorboardX import SummaryWriter

        self._tensorboard = SummaryWriter(logdir=str(folder / "tensorboard"))

    def _log_params(self, entry: str, config, resuming: bool) -> None:
        """Log the resolved config. `mlflow run` has logged its own -P values already (dataset,
        network, params); where the resolved value differs (`cifar10.3@250` resolves to
        `cifar10`), it is logged as `resolved_<key>` rather than clash with MLflow's."""
        import mlflow

        wanted = {"entry": entry, **{k: str(v) for k, v in as_flat_dict(config).items()}}
        wanted.pop("resume", None)
        existing = mlflow.get_run(self.run_id).data.params

        def logged(key: str) -> str | None:
            return existing.get(f"resolved_{key}", existing.get(key))

        clashes = {k: (logged(k), v) for k, v in wanted.items()
                   if logged(k) is not None and logged(k) != v}
        if clashes and resuming:
            listed = "; ".join(f"{k}: run has {old!r}, now {new!r}" for k, (old, new) in
                               sorted(clashes.items()))
            mlflow.end_run("FAILED")
            raise ConfigError(f"the run {self.run_id} was started with other parameters ({listed}). "
                              "Resume with the parameters of the original run.")
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

    def path(self, relative: str) -> Path:
        """A local path inside the run's artifacts (its folder is created)."""
        target = self.artifact_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def finish(self, status: str) -> None:
        if not self.enabled or self.run_id is None:
            return
        import mlflow

        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._upload_on_close:
            mlflow.log_artifacts(str(self.artifact_dir))
            shutil.rmtree(self.artifact_dir, ignore_errors=True)
        mlflow.end_run(status)
