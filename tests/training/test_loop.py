"""The one training loop: folds, warm-up, checkpoint cadence, stopping, the end of an epoch."""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from streamfit import Batch, State, TrainingInterrupted, get_algorithm
from streamfit.core.state import Position
from streamfit.training.checkpoint import Checkpoints
from streamfit.training.loop import Loop, StopFlag, fold, warm_up

CPU = torch.device("cpu")
HP = {"predictor_type": "binary_classifier", "num_models": 2, "num_point_for_scaler": 250}


def _batches(n: int, size: int = 100, width: int = 3) -> Iterator[Batch]:
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        x = torch.randn(size, width, generator=g)
        yield Batch(x, (x[:, 0] > 0).float(), end_position=(i + 1) * size, skipped=i % 2)


def _started(algo, n: int = 10, size: int = 100) -> tuple[State, Iterator[Batch]]:  # type: ignore[no-untyped-def]
    return warm_up(algo, None, _batches(n, size), CPU, "rows")


def _saved(folder: Path) -> list[State]:
    return [State.load(p) for p in sorted(folder.glob("checkpoint-*"))]


def test_fold_moves_the_position_and_the_trainers_counts() -> None:
    algo = get_algorithm("linear-learner")(HP)
    state, batches = _started(algo, n=3)
    losses = [fold(algo, state, batch) for batch in batches]
    assert all(math.isfinite(loss) for loss in losses)
    assert state.position == Position(0, 300)
    assert (state.trainer.rows, state.trainer.bad_rows, state.trainer.batches) == (300, 1, 3)


def test_warm_up_prepares_on_the_first_rows_and_trains_on_them_too() -> None:
    algo = get_algorithm("linear-learner")(HP)
    state, batches = _started(algo, n=5)
    assert state.meta["prepared"] and state.trainer.rows == 0
    assert [b.end_position for b in batches] == [100, 200, 300, 400, 500]


def test_checkpoints_every_n_batches_since_the_last_one(tmp_path: Path) -> None:
    algo = get_algorithm("linear-learner")(HP)
    ckpts = Checkpoints(tmp_path, keep=100)
    loop = Loop(algo, checkpoints=ckpts, checkpoint_batches=3)
    state, batches = _started(algo, n=7)
    for batch in batches:
        loop.step(state, batch)
    assert [s.position.rows for s in _saved(tmp_path)] == [300, 600]
    loop.end_epoch(state, None)  # a checkpoint, and the count starts again
    for batch in _batches(4):
        loop.step(state, batch)
    assert [s.position for s in _saved(tmp_path)][2:] == [Position(1, 0), Position(1, 300)]
    assert loop.batches == 11 and loop.rows == 1100


def test_max_batches_checkpoints_and_interrupts(tmp_path: Path) -> None:
    algo = get_algorithm("linear-learner")(HP)
    loop = Loop(algo, checkpoints=Checkpoints(tmp_path), max_batches=4)
    state, batches = _started(algo)
    with pytest.raises(TrainingInterrupted, match=f"epoch 1, row 400; checkpoint in {tmp_path}"):
        for batch in batches:
            loop.step(state, batch)
    (saved,) = _saved(tmp_path)
    assert saved.position.rows == 400 and saved.trainer.batches == 4


def test_sigterm_stops_at_the_next_batch_boundary() -> None:
    algo = get_algorithm("linear-learner")(HP)
    state, batches = _started(algo)
    with StopFlag() as stop:
        loop = Loop(algo, stop=stop)
        loop.step(state, next(batches))
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested
        with pytest.raises(TrainingInterrupted, match=r"row 200 \(no checkpoints\)"):
            loop.step(state, next(batches))
    assert signal.getsignal(signal.SIGTERM) is not stop._handle  # handler restored


def test_workers_batches_are_accounted_against_max_batches() -> None:
    loop = Loop(get_algorithm("pca")(num_components=1), max_batches=10)
    loop.account(6, 600, math.nan, 0)
    assert not loop.stop.requested
    loop.account(4, 400, math.nan, 0)
    assert loop.stop.requested and loop.rows == 1000


def test_the_end_of_an_epoch_can_stop_training_early(tmp_path: Path) -> None:
    algo = get_algorithm("linear-learner")(
        {**HP, "early_stopping_patience": 1, "early_stopping_tolerance": 0.5}
    )
    loop = Loop(algo, checkpoints=Checkpoints(tmp_path))
    state, batches = _started(algo)
    epochs = 0
    while not state.trainer.stopped_early:
        for batch in batches:
            loop.step(state, batch)
        loop.end_epoch(state, None)
        epochs += 1
        batches = _batches(10)
    assert 1 < epochs < 10 and state.position == Position(epochs, 0)
    assert len(state.meta["loss_history"]) == epochs  # the algorithm's hook ran once an epoch
    assert _saved(tmp_path)[-1].trainer.stopped_early
