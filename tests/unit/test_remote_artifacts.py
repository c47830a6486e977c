"""Background uploads to a remote artifact store, against a store that records what it receives."""

import threading

import pytest

from augssl.engine.artifacts import RemoteArtifacts


class RecordingStore:
    """Keeps the bytes of each upload; fails the uploads of the names in ``failing`` (once for
    those in ``failing_once``), and holds every upload until ``open`` is set."""

    def __init__(self, failing=(), failing_once=()):
        self.received: dict[str, list[bytes]] = {}
        self.failing, self.failing_once = set(failing), set(failing_once)
        self.open = threading.Event()
        self.open.set()

    def log_artifact(self, local_file, artifact_path=None):
        self.open.wait(10)
        name = local_file.rsplit("/", 1)[-1]
        relative = f"{artifact_path}/{name}" if artifact_path else name
        if relative in self.failing or relative in self.failing_once:
            self.failing_once.discard(relative)
            raise ConnectionError("store unreachable")
        with open(local_file, "rb") as handle:
            self.received.setdefault(relative, []).append(handle.read())


@pytest.fixture
def remote(tmp_path, monkeypatch):
    def make(store):
        monkeypatch.setattr("mlflow.store.artifact.artifact_repository_registry."
                            "get_artifact_repository", lambda uri: store)
        staging = tmp_path / "staging"
        staging.mkdir(exist_ok=True)
        return RemoteArtifacts("mlflow-artifacts:/1/run/artifacts", staging), staging
    return make


def test_files_are_sent_once_and_the_rest_when_the_run_ends(remote):
    store = RecordingStore()
    artifacts, staging = remote(store)
    (staging / "checkpoints").mkdir()
    (staging / "checkpoints" / "checkpoint_4.pt").write_bytes(b"four")
    stored = []
    artifacts.upload("checkpoints/checkpoint_4.pt", after=lambda: stored.append(True))
    (staging / "summary.json").write_text("{}")
    assert artifacts.close()
    assert store.received == {"checkpoints/checkpoint_4.pt": [b"four"], "summary.json": [b"{}"]}
    assert stored == [True]


def test_a_copy_is_sent_as_the_file_was_and_a_failed_upload_is_retried_at_the_end(remote):
    store = RecordingStore(failing_once={"best_model.pt"})
    artifacts, staging = remote(store)
    events = staging / "tensorboard" / "events.out"
    events.parent.mkdir()
    events.write_bytes(b"first")
    store.open.clear()  # the upload thread waits: the writer appends meanwhile
    artifacts.upload_copy("tensorboard")
    with events.open("ab") as handle:
        handle.write(b" second")
    (staging / "best_model.pt").write_bytes(b"best")
    artifacts.upload("best_model.pt")
    store.open.set()
    assert artifacts.close()
    assert store.received == {"tensorboard/events.out": [b"first", b"first second"],
                              "best_model.pt": [b"best"]}


def test_files_that_never_reach_the_store_are_kept_and_named(remote, capsys):
    artifacts, staging = remote(RecordingStore(failing={"final_model.pt"}))
    (staging / "final_model.pt").write_bytes(b"final")
    assert not artifacts.close()
    assert "1 files did not reach" in capsys.readouterr().err
    assert (staging / "final_model.pt").is_file()
