import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from augssl.engine.entry import free_local_port


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


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A tracking server as a team runs one (sqlite backend, artifacts served over HTTP) on
    127.0.0.1 and a free port, for the tests of one module; yields its URI."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_local_port()
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{folder}/mlflow.db", "--artifacts-destination", str(folder / "artifacts"),
         "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # schema migrations take half a minute on a busy CPU
        while True:
            if server.poll() is not None:
                raise RuntimeError("mlflow server stopped:\n" +
                                   (folder / "server.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not answer within 180 s")
            time.sleep(1)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own group: it and its workers
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture
def server_tracking(mlflow_server, request, tmp_path, monkeypatch):
    """``tracking`` against the module's tracking server, in an experiment of the test's own;
    returns the environment for subprocesses."""
    experiment = request.node.name
    for name, value in (("MLFLOW_TRACKING_URI", mlflow_server),
                        ("MLFLOW_EXPERIMENT_NAME", experiment)):
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(mlflow_server)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    yield env
    mlflow.set_tracking_uri(None)
