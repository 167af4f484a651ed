"""The state's trainer record: saved with the state, read from states written before it."""

from __future__ import annotations

from pathlib import Path

import torch

from streamfit import State
from streamfit.core.persist import save_folder
from streamfit.core.state import Layout, Position, TrainerRecord


def _state() -> State:
    return State("kmeans", {"k": 2}, 3, tensors={"centers": torch.ones(2, 3)}, meta={"rows": 7})


def test_the_trainer_record_round_trips(tmp_path: Path) -> None:
    state = _state()
    state.trainer = TrainerRecord(
        rows=120,
        bad_rows=3,
        batches=4,
        stopped_early=True,
        distributed=Layout(2, "merge", ["a.csv", "b.csv"], [60, 60]),
    )
    state.save(tmp_path / "s")
    loaded = State.load(tmp_path / "s")
    assert loaded.trainer == state.trainer
    assert loaded.meta == {"rows": 7} and loaded.counters == {}


def test_a_state_written_before_the_record_reads_the_old_keys(tmp_path: Path) -> None:
    """Before it, the trainer counted in ``counters`` and wrote into the algorithm's meta."""
    doc = {
        "hyperparameters": {"k": 2},
        "n_features": 3,
        "meta": {
            "rows": 7,
            "stopped_early": True,
            "distributed": {"workers": 2, "mode": "merge", "shards": ["a"], "positions": [5]},
        },
        "counters": {"rows": 120.0, "bad_rows": 3.0, "batches": 4.0, "reseeded_centers": 2.0},
        "position": {"epoch": 1, "rows": 0},
    }
    rng = torch.Generator().get_state()
    save_folder(
        tmp_path / "old", "state", "kmeans", {"centers": torch.ones(2, 3), "__rng__": rng}, doc
    )
    state = State.load(tmp_path / "old")
    assert state.trainer == TrainerRecord(120, 3, 4, True, Layout(2, "merge", ["a"], [5]))
    assert state.meta == {"rows": 7}  # the algorithm's own, as it wrote them
    assert state.counters == {"reseeded_centers": 2.0}
    assert state.position == Position(1, 0)


def test_a_clone_has_a_record_of_its_own() -> None:
    state = _state()
    state.trainer.distributed = Layout(2, "merge", ["a", "b"], [1, 2])
    copy = state.clone()
    copy.trainer.rows += 5
    assert copy.trainer.distributed is not None
    copy.trainer.distributed.positions[0] = 9
    assert state.trainer.rows == 0
    assert state.trainer.distributed.positions == [1, 2]
