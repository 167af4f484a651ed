"""The parameter server: one actor holding the shared state of an SGD algorithm.

Workers push deltas (:mod:`streamfit.core.delta`) and receive the newer state in the same
call; the server applies each delta as it arrives, against whatever the state has become
meanwhile (loose consistency, as DistBelief's Downpour SGD and SageMaker's built-ins do).
What comes back is only what changed since the pushing worker's last pull: rows of wide
tensors as (row indices, rows), small tensors whole (:mod:`streamfit.distributed.pull`).
Each push carries the pushing worker's position in its shard, so the server's state and
positions always agree: a checkpoint of them is consistent without pausing anyone, and the
rows a worker trained on but had not pushed when a run stopped are read again on resume.
"""

from __future__ import annotations

from collections.abc import Mapping

from streamfit.core.delta import Delta, DeltaRule, apply_delta
from streamfit.core.state import State
from streamfit.distributed.pull import Pull, RowVersions

__all__ = ["ParameterServer"]


class ParameterServer:
    """The shared state, when each of its rows last changed, and each worker's position."""

    def __init__(self, rules: Mapping[str, DeltaRule], workers: int) -> None:
        self.rules = dict(rules)
        self.state: State | None = None  # set by ``replace`` once a worker has prepared one
        self.versions = RowVersions(self.rules)
        self.positions = [0] * workers
        self.pushes = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def push(self, worker: int, delta: Delta, position: int, since: int | None) -> Pull:
        """Apply ``worker``'s delta, record where it stands, and return what changed since
        its pull at version ``since`` (everything when None)."""
        assert self.state is not None, "push before the server has a state"
        apply_delta(self.state, delta, self.rules, workers=len(self.positions))
        self.versions.applied(delta)
        self.positions[worker] = position
        self.pushes += 1
        self.bytes_in += delta.nbytes
        pull = self.versions.pull(self.state, since)
        self.bytes_out += pull.nbytes
        return pull

    def snapshot(self) -> tuple[State, list[int]]:
        assert self.state is not None
        return self.state, list(self.positions)

    def replace(self, state: State, positions: list[int]) -> None:
        """Start an epoch (or continue after the driver's end-of-epoch hook)."""
        self.state, self.positions = state, list(positions)
        self.versions.reset(state)

    def stats(self) -> dict[str, float]:
        return {
            "pushes": float(self.pushes),
            "push_bytes": float(self.bytes_in),
            "pull_bytes": float(self.bytes_out),
        }
