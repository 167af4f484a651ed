"""Which packed candidate a model is made of: held-out scores of every candidate, kept in the
state (Linear Learner's reservoir, :mod:`streamfit.algorithms.linear_learner.selection`), and
the choice among them for a selection criterion.

Held-out rows are, in order of preference: the validation channel's (``calibrate``); with one
epoch, the latest training rows, each scored before it is trained on (progressive
validation); with more (and more than one candidate), a fixed 1 in :data:`HOLD_OUT` of the
training rows (by position, the same every epoch) that are never trained on, scored in the
latest epoch: a row seen in an earlier epoch would favour the candidates that overfit.

A candidate whose held-out scores are not all finite (its learning rate made it diverge) is
never chosen; if none is finite, candidate 0 is.

>>> raw = torch.tensor([[2.0, float("nan"), -1.0], [-2.0, 0.0, 1.0]])
>>> chosen = choose(raw, torch.tensor([1.0, 0.0]), "binary_classifier", "loss_function")
>>> chosen.model, chosen.values[1]
(0, None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from streamfit.algorithms.linear_learner.losses import LossParams
from streamfit.algorithms.linear_learner.selection import HOLD_OUT, merge_held_out_scores, select
from streamfit.algorithms.linear_learner.selection import held_out as held_out_rows
from streamfit.core.batch import Batch
from streamfit.core.state import State

__all__ = [
    "HOLD_OUT",
    "RESERVOIR_ROWS",
    "Choice",
    "choose",
    "held_out",
    "merge_held_out_scores",
    "new_reservoir",
    "start_epoch",
    "summary",
]

#: Held-out rows whose scores every candidate keeps: 20,000 measure a log loss or an AUC to
#: about 0.003, enough to tell the candidates apart.
RESERVOIR_ROWS = 20_000


@dataclass(frozen=True)
class Choice:
    model: int
    threshold: float
    criterion: str
    #: Each candidate's value of the criterion (higher is better; losses negated), None for
    #: one that diverged.
    values: list[float | None]


def new_reservoir(state: State, m: int) -> dict[str, torch.Tensor]:
    """The reservoir's tensors (and its cursor in ``state.meta``) for ``m`` candidates."""
    state.meta.update(
        calib_filled=0, calib_seen=0, calib_next=0, calib_source="train", calib_epoch=0
    )
    return {
        "calib_scores": torch.zeros(RESERVOIR_ROWS, m),
        "calib_labels": torch.zeros(RESERVOIR_ROWS),
    }


def held_out(batch: Batch) -> torch.Tensor:
    """Which of ``batch``'s rows are held out (1 in ``HOLD_OUT``), by their positions in the
    epoch (:func:`~streamfit.algorithms.linear_learner.selection.held_out`): the same rows
    every epoch.

    >>> rows = held_out(Batch(torch.zeros(160_000, 1), end_position=160_000))
    >>> int(rows.sum())  # of 160,000
    9999
    >>> later = held_out(Batch(torch.zeros(1000, 1), end_position=6000))
    >>> torch.equal(later, rows[5000:6000])
    True
    """
    return held_out_rows(batch.end_position - batch.n_rows, batch.n_rows, batch.device)


def start_epoch(state: State, epoch: int) -> None:
    """Empty the reservoir of held-out rows at a new epoch: each is scored again."""
    if state.meta["calib_epoch"] != epoch:
        state.meta.update(calib_epoch=epoch, calib_filled=0, calib_next=0)


def choose(
    raw: torch.Tensor,
    labels: torch.Tensor,
    predictor_type: str,
    criterion: str,
    beta: float = 1.0,
    target_precision: float = 0.8,
    target_recall: float = 0.8,
) -> Choice:
    """The best candidate on held-out raw scores ``(rows, M)``, among the finite ones."""
    binary = predictor_type == "binary_classifier"
    loss = "logistic" if binary else "squared_loss"
    finite = torch.isfinite(raw).all(0).nonzero().squeeze(1)
    if raw.shape[0] == 0 or finite.numel() == 0:
        none: list[float | None] = [None] * raw.shape[1]
        return Choice(0, 0.5 if binary else 0.0, criterion, none)
    picked = select(
        raw.index_select(1, finite),
        labels,
        predictor_type=predictor_type,
        loss=loss,
        loss_params=LossParams(),
        criterion=criterion,
        beta=beta,
        target_precision=target_precision,
        target_recall=target_recall,
    )
    values: list[float | None] = [None] * raw.shape[1]
    for i, v in zip(finite.tolist(), picked.values, strict=True):
        values[i] = v if math.isfinite(v) else None
    return Choice(int(finite[picked.model]), picked.threshold, picked.criterion, values)


def summary(choice: Choice, settings: dict[str, list[float]], state: State) -> dict[str, Any]:
    """The model's record of the selection: what chose, on which rows, the best candidate,
    and every candidate's settings and value."""
    return {
        "criterion": choice.criterion,
        "rows": int(state.meta["calib_filled"]),
        "source": state.meta["calib_source"],
        "best": choice.model,
        "candidates": [
            {**{name: v[i] for name, v in settings.items()}, "value": value}
            for i, value in enumerate(choice.values)
        ],
    }
