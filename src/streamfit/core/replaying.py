"""Replay in training: after each fresh batch, ``replay`` batches drawn from the state's
reservoir (:mod:`streamfit.core.replay`) are folded too, so that one read of a source trains
about as much as ``1 + replay`` epochs would, at fixed memory.

An algorithm opts in by deriving from :class:`Replaying` (before ``Algorithm``) and its
hyperparameters from :class:`ReplayHyperparameters`; ``replay=0``, the default, turns it off.
A fractional ratio spreads the replay batches evenly: ``replay=0.5`` folds one after every
other fresh batch, decided by the count of fresh batches the reservoir has seen, so a
resumed run replays exactly where an uninterrupted one would.

>>> [replays_due(0.5, n) for n in range(1, 7)]
[0, 1, 0, 1, 0, 1]
>>> [replays_due(1.5, n) for n in range(1, 5)]
[1, 2, 1, 2]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import ClassVar

import torch

from streamfit.core.batch import Batch
from streamfit.core.hyperparameters import Hyperparameters, NonNegativeFloat, PositiveFloat
from streamfit.core.replay import CSRReservoir, RecordReservoir, create_rows, open_reservoir
from streamfit.core.state import State

__all__ = ["ReplayHyperparameters", "Replaying", "replay_after", "replays_due"]


class ReplayHyperparameters(Hyperparameters):
    """The replay settings an algorithm that replays accepts."""

    #: Reservoir batches folded after each fresh batch (0: no replay, no reservoir).
    replay: NonNegativeFloat = 0.0
    #: The reservoir's memory in megabytes, allocated with the state and never more.
    replay_capacity_mb: PositiveFloat = 64.0


def replays_due(ratio: float, fresh: int) -> int:
    """How many replay batches follow fresh batch number ``fresh`` (from 1) at ``ratio``:
    ``floor(ratio * fresh) - floor(ratio * (fresh - 1))``, in exact arithmetic."""
    r = Fraction(ratio)
    return math.floor(r * fresh) - math.floor(r * (fresh - 1))


class Replaying:
    """What the training loop asks of an algorithm that replays. The defaults keep rows of
    the algorithm's width in a reservoir under ``meta["replay"]``; an algorithm whose
    examples are not rows (sequence windows) overrides :meth:`remember` and :meth:`recall`.
    """

    replay_prefix: ClassVar[str] = "replay"

    def replay_ratio(self) -> float:
        return float(getattr(self.hp, "replay", 0.0))  # type: ignore[attr-defined]

    def replay_capacity_bytes(self) -> int:
        return int(float(getattr(self.hp, "replay_capacity_mb", 0.0)) * 2**20)  # type: ignore[attr-defined]

    def init_replay(self, state: State, device: torch.device | str = "cpu") -> None:
        """Allocate the reservoir in a new state (nothing when replay is off)."""
        if self.replay_ratio() > 0:
            create_rows(
                state,
                state.n_features,
                self.replay_capacity_bytes(),
                labelled=bool(getattr(self, "supervised", True)),
                prefix=self.replay_prefix,
                device=device,
            )

    def adopt_replay(self, state: State) -> None:
        """For ``_adopt``: give a state trained without replay a reservoir when replay is
        now on. A reservoir the state has stays as it is: its capacity was fixed with it."""
        if self.replay_ratio() > 0 and self.replay_prefix not in state.meta:
            self.init_replay(state, state.device)

    def reservoir(self, state: State) -> RecordReservoir | CSRReservoir:
        return open_reservoir(state, self.replay_prefix)

    def fresh_batches(self, state: State) -> int:
        """Fresh batches remembered so far: what the replay schedule counts."""
        return self.reservoir(state).offered

    def remember(self, state: State, batch: Batch) -> None:
        """Offer a fresh batch (already trained on) to the reservoir."""
        self.reservoir(state).offer_batch(batch)

    def recall(self, state: State, rows: int) -> Batch | None:
        """Up to ``rows`` remembered rows, or None while nothing is remembered."""
        return self.reservoir(state).sample_batch(rows)


def replay_after(
    algo: object, state: State, batch: Batch, update: Callable[[State, Batch], float]
) -> int:
    """After the fresh ``batch`` is folded: fold the replay batches due (with ``update``, the
    loop's way to train one batch), then remember ``batch``. Returns how many were folded.
    Does nothing for an algorithm that does not replay, or with ``replay=0``."""
    if not isinstance(algo, Replaying) or algo.replay_ratio() <= 0 or batch.n_rows == 0:
        return 0
    rows = int(getattr(algo, "mini_batch_size", batch.n_rows))
    folded = 0
    for _ in range(replays_due(algo.replay_ratio(), algo.fresh_batches(state) + 1)):
        drawn = algo.recall(state, rows)
        if drawn is None:  # nothing remembered yet: the first batch has nothing to replay
            break
        update(state, drawn)
        folded += 1
    algo.remember(state, batch)
    return folded
