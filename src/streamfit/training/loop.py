"""The training loop, written once: every way streamfit trains goes through it.

- :func:`fold` trains a state on one batch and moves its position and the trainer's counts
  (:func:`train_step` is the training alone, with the divergence check);
- :func:`warm_up` makes a state from the first rows, or prepares one, before they are folded;
- :class:`Loop` keeps what a run's loop keeps between batches: the rows and batches of this
  run and its progress line, ``max_batches``, the checkpoint cadence (seconds or batches), the
  stop flag SIGTERM sets (a checkpoint, then :class:`~streamfit.errors.TrainingInterrupted`)
  and the end of an epoch (the algorithm's hook, early stopping, the next epoch, a
  checkpoint).

Its users: the in-process trainer (:class:`~streamfit.training.trainer.TrainingRun`), the
distributed driver (which accounts for its workers' batches here) and the Ray workers (which
fold with :func:`fold`), and the scikit-learn estimators (:mod:`streamfit.sklearn`).

>>> import torch
>>> from streamfit import Batch, get_algorithm
>>> algo = get_algorithm("pca")(num_components=1)
>>> loop = Loop(algo)
>>> state, batches = warm_up(algo, None, iter([Batch(torch.ones(4, 2), end_position=4)]),
...                          torch.device("cpu"), "rows")
>>> for batch in batches:
...     _ = loop.step(state, batch)
>>> loop.end_epoch(state, None)
>>> state.trainer.rows, state.position
(4, Position(epoch=1, rows=0))
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from types import FrameType
from typing import Any, NoReturn

import torch

from streamfit.core.algorithm import Algorithm, BatchStream
from streamfit.core.batch import CSR, Batch
from streamfit.core.replaying import replay_after
from streamfit.core.state import Position, State
from streamfit.data.base import Source
from streamfit.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from streamfit.training.checkpoint import Checkpoints
from streamfit.training.curves import CurveRecorder
from streamfit.training.progress import TrainingProgress
from streamfit.training.publish import Publisher

__all__ = ["Loop", "StopFlag", "fold", "train_step", "warm_up"]

log = logging.getLogger(__name__)

AnyAlgorithm = Algorithm[Any]


def train_step(algo: AnyAlgorithm, state: State, batch: Batch) -> float:
    """``algo.update(state, batch)``, refusing a NaN or infinite loss
    (:class:`TrainingDiverged`): every later step would only spread it."""
    loss = algo.update(state, batch)
    if batch.n_rows and algo.has_loss and not math.isfinite(loss):
        raise TrainingDiverged(
            f"{algo.name}: the training loss of the batch ending at row "
            f"{batch.end_position:,} (epoch {state.position.epoch + 1}) is {loss}: the "
            "settings make training diverge (a learning rate too large?) or the features are "
            "too large to train on as they are (scale them); the last checkpoint with finite "
            "values is kept"
        )
    return loss


def fold(algo: AnyAlgorithm, state: State, batch: Batch) -> float:
    """Train ``state`` on the fresh ``batch`` and advance its position and the trainer's
    counts; returns the batch's training loss (NaN if none)."""
    loss = train_step(algo, state, batch)
    state.position.rows = batch.end_position
    record = state.trainer
    record.rows += batch.n_rows
    record.bad_rows += batch.skipped
    record.unknown_words += batch.unknown_words
    record.batches += 1
    # Then the reservoir's batches due after it (none unless the algorithm replays), moving
    # neither the position nor the trainer's counts; a divergence names this batch's rows.
    replay_after(
        algo,
        state,
        batch,
        lambda s, b: train_step(algo, s, replace(b, end_position=batch.end_position)),
    )
    return loss


class StopFlag:
    """Set by SIGTERM (or by ``max_batches``); the loop checkpoints and stops at the next
    batch boundary. Outside ``with`` it is a plain flag that no signal sets."""

    def __init__(self) -> None:
        self.requested = False
        #: Set by the signal only: a read waiting for data that may never come (a message
        #: stream's) ends, so that a quiet stream stops too.
        self.signalled = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signalled.set()

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class Loop:
    """One run's loop: what it counts, when it checkpoints, when it stops.

    ``step`` folds a batch trained here; ``account`` counts batches trained elsewhere (a
    distributed run's workers). Checkpoints are due every ``checkpoint_batches`` batches or
    ``checkpoint_seconds`` seconds since the last one, and at the end of every epoch.
    """

    def __init__(
        self,
        algo: AnyAlgorithm,
        *,
        checkpoints: Checkpoints | None = None,
        checkpoint_seconds: float | None = None,
        checkpoint_batches: int | None = None,
        max_batches: int | None = None,
        progress: TrainingProgress | None = None,
        stop: StopFlag | None = None,
        curve: CurveRecorder | None = None,
    ) -> None:
        self.algo = algo
        self.checkpoints = checkpoints
        self.checkpoint_seconds = checkpoint_seconds
        self.checkpoint_batches = checkpoint_batches
        self.max_batches = max_batches
        self.progress = progress
        self.stop = stop if stop is not None else StopFlag()
        self.curve = curve
        #: The source being folded: told where each fold leaves it, and when a checkpoint
        #: holding that is written (a message stream records and acknowledges).
        self.source: Source | None = None
        #: Continuous training: a model version published every interval (after a
        #: checkpoint), on SIGTERM and at the end of every epoch.
        self.publisher: Publisher | None = None
        #: Rows and batches trained by this run (the state's record counts every run's).
        self.rows = self.batches = 0
        self._saved_batches = 0
        self._last_save = time.monotonic()

    def step(self, state: State, batch: Batch) -> float:
        """Fold ``batch``, count it, then stop (after a checkpoint) if asked to, else
        checkpoint if one is due; returns the batch's training loss."""
        loss = fold(self.algo, state, batch)
        if self.source is not None:
            self.source.stamp(state)
        per_row = loss / batch.n_rows if batch.n_rows else math.nan
        self.account(1, batch.n_rows, per_row, state.position.epoch)
        if self.publisher is not None:
            self.publisher.observe(batch.n_rows, loss)
        if self.stop.requested:
            self.interrupt(state)
        publish = self.publisher is not None and self.publisher.due()
        if self.due() or publish:
            self.save(state)
        if publish:
            self.publish(state)
        return loss

    def account(self, batches: int, rows: int, loss_per_row: float, epoch: int) -> None:
        """Count ``batches`` of ``rows`` trained; ``max_batches`` reached sets the stop flag."""
        self.batches += batches
        self.rows += rows
        if self.progress is not None:
            self.progress.advance(rows, loss_per_row, epoch)
        if self.curve is not None:
            self.curve.record(rows, loss_per_row * rows, epoch)
        if self.max_batches is not None and self.batches >= self.max_batches:
            self.stop.requested = True

    def due(self) -> bool:
        """Whether a checkpoint is due (never without a checkpoint folder)."""
        if self.checkpoints is None:
            return False
        every, seconds = self.checkpoint_batches, self.checkpoint_seconds
        return (every is not None and self.batches - self._saved_batches >= every) or (
            seconds is not None and time.monotonic() - self._last_save >= seconds
        )

    def save(self, state: State) -> None:
        """A checkpoint of ``state`` now (nothing without a checkpoint folder)."""
        if self.checkpoints is not None:
            self.checkpoints.save(state)
            self._last_save, self._saved_batches = time.monotonic(), self.batches
            if self.source is not None:
                self.source.commit(state)

    def interrupt(self, state: State) -> NoReturn:
        """Checkpoint ``state`` (and publish it) and stop (:class:`TrainingInterrupted`)."""
        self.save(state)
        self.publish(state)
        where = f"epoch {state.position.epoch + 1}, row {state.position.rows}"
        ckpts = self.checkpoints
        saved = f"; checkpoint in {ckpts.folder}" if ckpts else " (no checkpoints)"
        raise TrainingInterrupted(f"stopped at {where}{saved}")

    def end_epoch(self, state: State, validation: BatchStream | None) -> None:
        """After the last batch of an epoch: the algorithm's hook (which may stop training
        early: ``state.trainer.stopped_early``), the next epoch's position, a checkpoint."""
        epoch = state.position.epoch
        if self.algo.end_epoch(state, validation):
            state.trainer.stopped_early = True
            log.info("early stopping after epoch %d", epoch + 1)
        state.position = Position(epoch + 1, 0)
        self.save(state)
        self.publish(state)

    def publish(self, state: State) -> None:
        """A new model version of ``state`` (nothing unless training continuously)."""
        if self.publisher is not None:
            path = self.publisher.publish(self.algo, state)
            log.info("published %s", path)


def warm_up(
    algo: AnyAlgorithm,
    state: State | None,
    batches: Iterator[Batch],
    device: torch.device,
    name: str,
) -> tuple[State, Iterator[Batch]]:
    """Buffer the first ``warmup_rows`` rows for ``prepare`` (creating the state from the
    first of them if there is none yet); they are then trained on, as the returned batches."""
    held: list[Batch] = []
    rows = 0
    want = max(algo.warmup_rows(), 1)
    for batch in batches:
        if not held and batch.n_rows:  # the rows held here must fit beside the state
            per_row = _bytes(batch) / batch.n_rows
            algo.check_memory(batch.n_features, int(per_row * (want + 2 * algo.mini_batch_size)))
        held.append(batch)
        rows += batch.n_rows
        if rows >= want:
            break
    if state is None:
        first = next((b for b in held if b.n_rows), None)
        if first is None:
            raise ConfigError(f"{name}: no rows to train on")
        state = algo.init_state(first.n_features, device)
    algo.prepare(state, [b for b in held if b.n_rows])

    def chained() -> Iterator[Batch]:
        yield from held
        yield from batches

    return state, chained()


def _bytes(batch: Batch) -> int:
    f = batch.features
    parts = [f.indptr, f.indices, f.values] if isinstance(f, CSR) else [f]
    return sum(t.numel() * t.element_size() for t in parts)
