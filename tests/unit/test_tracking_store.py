"""Which tracking stores are made ready under a lock: local SQLite files alone."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from augssl.engine.store import ready_store, sqlite_store_path


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
