"""A worker: trains on one shard of the input, in a Ray actor.

The driver calls :meth:`ShardWorker.step` over and over, a few batches at a time, so that it
hears of progress and can checkpoint or stop between calls; the worker keeps its reader
open between them. With a parameter server the worker pushes what its last
``exchange_every`` batches changed and continues from the server's newer state, of which
the push brings back only what changed since the worker's previous push
(:mod:`streamfit.distributed.pull`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from streamfit.core.algorithm import Algorithm
from streamfit.core.batch import Batch
from streamfit.core.state import Position, State
from streamfit.data.batcher import Batcher
from streamfit.data.source import Source
from streamfit.distributed.pull import Replica
from streamfit.training.loop import fold, warm_up

__all__ = ["LATEST_EVERY", "ShardWorker", "StepReport"]

#: Pushes that carry the ``latest`` tensors (Linear Learner's reservoir of held-out scores):
#: one in this many, and the last of an epoch. They are a sample of recent rows, so a server
#: copy a few pushes old serves as well, and sending them on every push made them most of the
#: traffic (32 scores for each row trained on).
LATEST_EVERY = 8


@dataclass(frozen=True)
class StepReport:
    """What one :meth:`ShardWorker.step` did."""

    index: int
    batches: int
    rows: int
    loss: float  # summed training loss of the batches that have one
    loss_rows: int
    position: int  # rows of the shard consumed in this epoch
    finished: bool  # the shard is done for this epoch (and, with a server, all pushed)


class ShardWorker:
    """Trains ``algo`` on ``source`` (one shard); ``server`` is a parameter server's
    actor handle, or None when the driver combines the workers' states itself."""

    def __init__(
        self,
        index: int,
        algo: Algorithm[Any],
        source: Source,
        device: str,
        server: Any = None,
        exchange_every: int = 4,
    ) -> None:
        self.index = index
        self.algo = algo
        self.source = source
        self.device = torch.device(device)
        self.server = server
        self.exchange_every = exchange_every
        self.state: State | None = None
        self.replica: Replica | None = None  # with a server: what this worker last pulled
        self.batches: Iterator[Batch] = iter(())
        self.epoch = self.position = self.unpushed = self.pushes = 0

    def begin(self, epoch: int, position: int, state: State | None, width: int | None) -> bool:
        """Read the shard from ``position`` of ``epoch`` on, training ``state`` (None: a new
        state prepared on this shard's first rows). Returns whether the shard has rows left."""
        self.epoch, self.position, self.unpushed = epoch, position, 0
        if state is not None:
            width = state.n_features
        batcher = Batcher(
            self.source,
            self.algo.mini_batch_size,
            device=self.device,
            skip=position,
            n_features=width,
        )
        batches = iter(batcher)
        first = next(batches, None)
        if first is None:
            self.state, self.batches = state, iter(())
            return False
        batches = itertools.chain([first], batches)
        if state is None:
            state, batches = warm_up(self.algo, None, batches, self.device, self.source.name)
        self.algo.for_worker(state)
        self.state, self.batches = state, batches
        self._track(state)
        return True

    def ready(self) -> bool:
        """Answers once the actor is up (its process started and streamfit imported)."""
        return True

    def snapshot(self) -> tuple[State | None, int]:
        """This worker's state (None if it has none yet) and its position in the shard."""
        return self.state, self.position

    def shared(self, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The floating tensors of this worker's state under ``prefixes`` (on the CPU), for
        the driver to average (``Distribution.averaged``)."""
        if self.state is None:
            return {}
        return {
            name: t.detach().cpu()
            for name, t in self.state.tensors.items()
            if name.startswith(prefixes) and t.is_floating_point()
        }

    def share(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take the driver's average of ``shared`` tensors, in place (a network that holds
        its state's tensors keeps training them)."""
        if self.state is None:
            return
        for name, value in tensors.items():
            self.state.tensors[name].copy_(value)

    def replace(self, state: State) -> None:
        """Continue from ``state`` (synchronous averaging), where the shard's reading is."""
        self._track(state)

    def step(self, max_batches: int) -> StepReport:
        """Train on up to ``max_batches`` batches of the shard."""
        batches = rows = loss_rows = 0
        loss = 0.0
        finished = False
        for _ in range(max_batches):
            batch = next(self.batches, None)
            if batch is None:
                finished = True
                break
            assert self.state is not None
            batch_loss = fold(self.algo, self.state, batch)
            if self.replica is not None:  # what the next push's delta need compare
                self.replica.touch(self.algo.touched_rows(batch))
            self.position = batch.end_position
            batches += 1
            rows += batch.n_rows
            if not math.isnan(batch_loss):
                loss += batch_loss
                loss_rows += batch.n_rows
            self.unpushed += 1
            if self.server is not None and self.unpushed >= self.exchange_every:
                self.push()
        if finished and self.server is not None:
            self.push(final=True)
        return StepReport(self.index, batches, rows, loss, loss_rows, self.position, finished)

    def push(self, final: bool = False) -> None:
        """Send what training changed since the last pull; continue from the server's state."""
        import ray

        assert self.state is not None and self.replica is not None
        latest = final or self.pushes % LATEST_EVERY == 0
        delta = self.replica.delta(self.state, latest=latest)
        since = self.replica.since
        pull = ray.get(self.server.push.remote(self.index, delta, self.position, since))
        self.state = self.replica.receive(self.state, pull, latest=latest)
        self.state.position = Position(self.epoch, self.position)
        self.unpushed = 0
        self.pushes += 1

    def _track(self, state: State) -> None:
        """Train ``state`` from here; with a server, the next pull is a full one (the
        driver hands the server the same state, as a new version, with ``replace``)."""
        state.position = Position(self.epoch, self.position)
        self.state = state
        self.unpushed = 0
        if self.server is not None:
            self.replica = Replica(
                state, self.algo.distribution.delta_rules, self.algo.distribution.touched_tensors
            )
