"""The training batch streams of a run, as one object that checkpoints carry.

A step reads the next batch of each of its streams; a resumed run must read the very batches an
uninterrupted one would have read. ``DeviceBatches`` know their position; loaders whose workers
make the batches (``worker_batches``) cannot be positioned and restart at the beginning of an
epoch, so they are left out of the state.
"""

from __future__ import annotations

from augssl.data.loaders import DeviceBatches


class BatchStreams:
    """Named batch streams whose positions go in checkpoints.

    ``counted_by`` names the entry of a checkpoint that counts the steps of these streams, each
    step reading one batch of each (the trainer's iteration, or the hyper-optimiser's steps): a
    checkpoint written before the streams had a state of their own is resumed from that count.
    """

    def __init__(self, streams: dict[str, object],
                 counted_by: tuple[str, str] = ("trainer", "iteration")) -> None:
        self.streams = {name: stream for name, stream in streams.items()
                        if isinstance(stream, DeviceBatches)}
        self.counted_by = counted_by

    def state_dict(self) -> dict:
        return {name: stream.state_dict() for name, stream in self.streams.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, stream in self.streams.items():
            stream.load_state_dict(state[name])

    def older_checkpoint_state(self, checkpoint: dict) -> dict | None:
        """The state an older ``checkpoint`` implies, or None where it lacks the count too."""
        owner, key = self.counted_by
        if key not in checkpoint.get(owner, {}):
            return None
        count = int(checkpoint[owner][key])
        return {name: stream.position_after(count) for name, stream in self.streams.items()}
