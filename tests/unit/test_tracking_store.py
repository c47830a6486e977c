"""Which tracking stores are made ready under a lock: local SQLite files alone."""

from __future__ import annotations

import threading
from pathlib import Path

import mlflow
import pytest
from filelock import FileLock

from augssl.engine.store import ready_store, sqlite_store_path, store_lock_path


@pytest.mark.parametrize("uri, path", [
    ("sqlite:///mlflow.db", Path("mlflow.db")),
    ("sqlite:////srv/runs/mlflow.db", Path("/srv/runs/mlflow.db")),
    ("sqlite://", None),
    ("sqlite:///:memory:", None),
    ("http://127.0.0.1:5000", None),
    ("file:///srv/mlruns", None),
    ("mlruns", None),
])
def test_only_a_sqlite_file_is_a_store_to_make_ready(uri, path):
    assert sqlite_store_path(uri) == path


def test_ready_store_makes_the_tables_in_a_new_folder(tmp_path):
    store = tmp_path / "new" / "runs.db"
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    try:
        ready_store()
        assert [e.name for e in mlflow.MlflowClient().search_experiments()] == ["Default"]
    finally:
        mlflow.set_tracking_uri(None)
    assert store.stat().st_size > 0


def test_ready_store_waits_while_another_process_makes_the_tables(tmp_path):
    store = tmp_path / "runs.db"
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    opened = threading.Event()
    try:
        with FileLock(store_lock_path(store)):  # another process, making the tables
            waiting = threading.Thread(target=lambda: (ready_store(), opened.set()))
            waiting.start()
            assert not opened.wait(timeout=1.0)
            assert not store.exists()
        assert opened.wait(timeout=60)
        waiting.join()
    finally:
        mlflow.set_tracking_uri(None)
    assert store.stat().st_size > 0
