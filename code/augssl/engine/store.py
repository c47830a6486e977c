"""The MLflow tracking store, made ready by one process at a time.

MLflow creates and migrates a SQLite store's tables the first time a process opens it. Processes
that do so at the same time break each other's migration (alembic: "Online migration expected to
match one row"), and the ones that lose die before making a run: runs started together on a fresh
clone, whose default store is ./mlflow.db, did. Entries and sweeps open the store through
``ready_store`` first, which holds an exclusive lock (the file ``<store>.lock`` beside it, through
``filelock``: on Linux, macOS and Windows alike) while it opens it: the first process makes the
tables, the others find them made. Other stores (a server, a folder) need nothing.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock


def sqlite_store_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:`` tracking URI; None for any other store."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database
    return None if database in (None, "", ":memory:") else Path(database)


def ready_store() -> None:
    """Open the current tracking store, creating a SQLite store's tables under a lock."""
    import mlflow

    path = sqlite_store_path(mlflow.get_tracking_uri())
    if path is None:
        return
    path.resolve().parent.mkdir(parents=True, exist_ok=True)
    with FileLock(store_lock_path(path)):
        mlflow.MlflowClient().search_experiments(max_results=1)


def store_lock_path(store: Path) -> Path:
    """The lock file that ``ready_store`` holds while it opens ``store``."""
    return store.with_name(store.name + ".lock")
