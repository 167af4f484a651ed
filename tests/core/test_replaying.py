"""The replay ratio: how many reservoir batches follow each fresh one, and that a run with
replay resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamfit.core.batch import Batch
from streamfit.core.replaying import replay_after, replays_due
from streamfit.core.state import State
from tests.core.tiny_nn import TinyNN

pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(n: int = 640, size: int = 32) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return [Batch(x[i : i + size], x[i : i + size, 0] * 2) for i in range(0, n, size)]


def _fold(algo: TinyNN, state: State, batch: Batch) -> int:
    """What the training loop does with a fresh batch."""
    algo.update(state, batch)
    return replay_after(algo, state, batch, algo.update)


@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5, 1.0, 1.5, 4.0])
def test_the_replays_of_n_fresh_batches_are_floor_ratio_times_n(ratio: float) -> None:
    due = [replays_due(ratio, n) for n in range(1, 101)]
    assert all(d in (int(ratio), int(ratio) + 1) for d in due)
    for n in (1, 7, 10, 100):
        assert sum(due[:n]) == int(ratio * n + 1e-9)


def test_each_fresh_batch_is_followed_by_its_replays_and_then_remembered() -> None:
    algo = TinyNN(replay=1.5, replay_capacity_mb=0.01, mini_batch_size=32)
    state = algo.init_state(4)
    batches = _batches()
    folded = [_fold(algo, state, b) for b in batches]
    # Nothing to replay before the first batch is remembered; then 1, 2, 1, 2, ...
    assert folded == [0] + [replays_due(1.5, n) for n in range(2, len(batches) + 1)]
    assert state.meta["net"]["steps"] == len(batches) + sum(folded)
    reservoir = algo.reservoir(state)
    assert reservoir.offered == len(batches)
    assert 0 < len(reservoir) == reservoir.slots < len(batches) * 32


def test_without_replay_there_is_no_reservoir_and_nothing_is_replayed() -> None:
    algo = TinyNN(mini_batch_size=32)
    state = algo.init_state(4)
    assert [_fold(algo, state, b) for b in _batches()[:3]] == [0, 0, 0]
    assert "replay" not in state.meta
    assert not any(k.startswith("replay.") for k in state.tensors)
    assert state.meta["net"]["steps"] == 3


def test_a_run_with_replay_resumed_from_disk_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    algo = TinyNN(replay=0.5, replay_capacity_mb=0.005, dropout=0.3, mini_batch_size=32)
    batches = _batches()
    whole = algo.init_state(4)
    for b in batches:
        _fold(algo, whole, b)
    part = algo.init_state(4)
    for b in batches[:7]:  # an odd count: the next fresh batch is owed a replay
        _fold(algo, part, b)
    part.save(tmp_path / "state")
    resumed = State.load(tmp_path / "state")
    other = TinyNN(algo.hp.as_dict())
    for b in batches[7:]:
        _fold(other, resumed, b)
    assert whole.tensors.keys() == resumed.tensors.keys()
    for name, t in whole.tensors.items():
        assert torch.equal(t, resumed.tensors[name]), name
    assert whole.meta == resumed.meta
    assert torch.equal(whole.generator.get_state(), resumed.generator.get_state())


def test_a_state_trained_without_replay_gets_a_reservoir_when_continued_with_it() -> None:
    batches = _batches()
    state = TinyNN(mini_batch_size=32).init_state(4)
    _fold(TinyNN(mini_batch_size=32), state, batches[0])
    algo = TinyNN(replay=1, replay_capacity_mb=0.01, mini_batch_size=32)
    algo.adopt(state)
    assert [_fold(algo, state, b) for b in batches[1:4]] == [0, 1, 1]
    slots = algo.reservoir(state).slots
    bigger = TinyNN(replay=1, replay_capacity_mb=0.02, mini_batch_size=32)
    bigger.adopt(state)  # a reservoir stays as it was made
    assert bigger.reservoir(state).slots == slots
    assert bigger.reservoir(state).offered == 3
