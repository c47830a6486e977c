import os
import sys
from pathlib import Path

import mlflow
import pytest


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """A private MLflow store for one test; returns the environment for subprocesses."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    yield env
    mlflow.set_tracking_uri(None)
