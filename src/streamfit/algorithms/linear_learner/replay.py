"""Small data sets in one read: Linear Learner keeps every row it reads, and when the read
ends, trains more epochs over them and chooses its candidate on rows it never trained on.

One pass over a few tens of thousands of rows is a few dozen mini-batches. Its best candidate
ends 0.004 to 0.008 AUC short of an in-memory logistic regression on real sets
(benchmarks/real_data.py), and more passes close the gap. But a stream cannot be read twice,
and scores of rows already trained on choose the candidates that overfit.

So, while a read still fits in ``replay_capacity_mb``:

- 1 row in 16 (:func:`.selection.held_out`) is held out, never trained on, and kept (the
  held-out store);
- every other row is trained on and kept (the reservoir);
- when the read ends (``end_epoch`` of a run of one epoch), epochs over the reservoir are
  trained, in a new random order each, until the best candidate's loss on the held-out rows
  has not improved by ``early_stopping_tolerance`` for ``early_stopping_patience`` epochs (at
  most ``replay_epochs``). Then every candidate's scores of the held-out rows, by the final
  weights, choose the candidate (a validation channel, if given, still replaces them).

A batch that would not fit in either store is from a stream long enough for one pass: its
held-out rows are trained on at once, both stores are dropped, and it goes on as before
(progressive validation on the latest rows). The extra work is bounded by the stores' size,
never the stream's. No row is left untrained, except when merging two states whose kept
rows do not fit together: the held-out rows of both are then left out.

A distributed run's workers keep no rows (``LinearLearner.for_worker``): each trains its
shard in one pass, and the candidate is chosen by progressive validation, as for a stream.

>>> import torch
>>> from streamfit.core.batch import Batch
>>> from streamfit.core.state import State
>>> state = State("demo", {}, 3)
>>> create_stores(state, Batch(torch.eye(3), torch.ones(3)), capacity_bytes=64 << 10)
>>> room(state, RESERVOIR, Batch(torch.eye(3), torch.ones(3))), holding(state)
(True, True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import torch

from streamfit.algorithms.linear_learner.selection import HOLD_OUT
from streamfit.core.batch import CSR, Batch
from streamfit.core.replay import (
    CSRReservoir,
    RecordReservoir,
    create_csr,
    create_rows,
    csr_capacity,
    open_reservoir,
)
from streamfit.core.state import State

__all__ = [
    "HOLDOUT",
    "RESERVOIR",
    "STORE_TENSORS",
    "as_layout",
    "create_stores",
    "drop_stores",
    "holding",
    "merge_stores",
    "outgrown",
    "reservoir_epochs",
    "room",
    "stored_batches",
]

RESERVOIR = "replay"
HOLDOUT = "holdout"
#: Every tensor of either store in either layout (for the parameter server's rules).
STORE_TENSORS = tuple(
    f"{prefix}.{name}"
    for prefix in (RESERVOIR, HOLDOUT)
    for name in (
        "keys",
        "held",
        "floor",
        "field.features",
        "field.labels",
        "indices",
        "values",
        "start",
        "length",
        "labels",
    )
)
#: CSR rows are sized for this many times the first batch's mean non-zeros per row.
_NNZ_MARGIN = 1.25
_LOWEST = torch.finfo(torch.float64).min


def create_stores(state: State, batch: Batch, capacity_bytes: int) -> None:
    """The reservoir and the held-out store in ``batch``'s layout: ``capacity_bytes`` in
    all, shared as the rows are (1 in ``HOLD_OUT`` to the held-out store)."""
    share = capacity_bytes // HOLD_OUT
    for prefix, size in ((RESERVOIR, capacity_bytes - share), (HOLDOUT, share)):
        _create(state, batch, size, prefix)
    state.meta["fresh_rows"] = 0


def _create(
    state: State, batch: Batch, capacity_bytes: int, prefix: str
) -> RecordReservoir | CSRReservoir:
    x = batch.features
    if isinstance(x, CSR):
        row_nnz = max(1.0, _NNZ_MARGIN * x.nnz / max(x.n_rows, 1))
        nnz, rows = csr_capacity(capacity_bytes, row_nnz)
        return create_csr(state, state.n_features, nnz, rows, True, prefix, state.device)
    return create_rows(state, state.n_features, capacity_bytes, True, prefix, state.device)


def holding(state: State) -> bool:
    """Whether ``state`` is still keeping its rows (the read has fitted so far)."""
    return RESERVOIR in state.meta and HOLDOUT in state.meta


def room(state: State, prefix: str, batch: Batch) -> bool:
    """Whether store ``prefix`` can take all of ``batch``'s rows without evicting any."""
    store = open_reservoir(state, prefix)
    if len(store) + batch.n_rows > store.slots:
        return False
    if isinstance(store, CSRReservoir):
        x = batch.features
        nnz = x.nnz if isinstance(x, CSR) else int(torch.count_nonzero(x))
        return int(store._t("length").sum()) + nnz <= store.capacity_nnz
    return True


def outgrown(state: State) -> bool:
    """Whether either store has evicted a row (its floor has risen): the rows no longer fit."""
    return any(
        float(state.tensors[f"{prefix}.floor"]) != _LOWEST for prefix in (RESERVOIR, HOLDOUT)
    )


def drop_stores(state: State) -> None:
    for prefix in (RESERVOIR, HOLDOUT):
        state.meta.pop(prefix, None)
        for name in [k for k in state.tensors if k.startswith(f"{prefix}.")]:
            del state.tensors[name]
    state.meta.pop("fresh_rows", None)


def merge_stores(out: State, a: State, b: State) -> None:
    """``out`` (a copy of ``a``) keeps the union of both states' rows if both still hold
    theirs and the union fits; else no stores, and the held-out rows of both, which neither
    trained on, are left out (at most 1 in 16 of reads that each fitted)."""
    if not (holding(a) and holding(b)):
        drop_stores(out)
        return
    for prefix in (RESERVOIR, HOLDOUT):
        open_reservoir(out, prefix).merge(open_reservoir(b, prefix))
    out.meta["fresh_rows"] = int(a.meta["fresh_rows"]) + int(b.meta["fresh_rows"])
    if outgrown(out):
        drop_stores(out)


def as_layout(batch: Batch, *, sparse: bool) -> Batch:
    """``batch`` with CSR rows (``sparse``) or dense ones: stored rows take the fresh rows'
    layout, whose scaling and lazy update they must share."""
    x = batch.features
    if sparse and not isinstance(x, CSR):
        return dataclasses.replace(batch, features=CSR.from_dense(x))
    if not sparse and isinstance(x, CSR):
        return dataclasses.replace(batch, features=x.to_dense())
    return batch


def stored_batches(
    state: State, prefix: str, rows: int, order: torch.Tensor | None = None
) -> Iterator[Batch]:
    """The rows of store ``prefix`` in batches of ``rows`` (in ``order``, positions among
    the rows held; else slot order), marked as replayed."""
    store = open_reservoir(state, prefix)
    slots = store.held()
    if order is not None:
        slots = slots[order.to(slots.device)]
    sparse = bool(state.meta.get("sparse_input", isinstance(store, CSRReservoir)))
    for i in range(0, slots.numel(), rows):
        part = slots[i : i + rows]
        if isinstance(store, CSRReservoir):
            batch = Batch(store.rows(part), store._t("labels")[part], replayed=True)
        else:
            items = store.items(part)
            batch = Batch(items["features"], items["labels"], replayed=True)
        yield as_layout(batch, sparse=sparse)


def reservoir_epochs(
    state: State,
    rows: int,
    most: int,
    train: Callable[[Batch], object],
    held_out_loss: Callable[[], float],
    tolerance: float,
    patience: int,
) -> list[float]:
    """Train epochs over the reservoir (``train`` a batch at a time, a new random order
    each, from the state's generator) until ``held_out_loss`` has not improved by
    ``tolerance`` (relative) for ``patience`` epochs, at most ``most``; returns the loss
    after each epoch."""
    n = open_reservoir(state, RESERVOIR).held().numel()
    history: list[float] = []
    best, bad = math.inf, 0
    for _ in range(most if n else 0):
        order = torch.randperm(n, generator=state.generator)
        for batch in stored_batches(state, RESERVOIR, rows, order):
            train(batch)
        loss = held_out_loss()
        history.append(loss)
        if loss < best - tolerance * abs(best) if math.isfinite(best) else loss < best:
            best, bad = loss, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return history
