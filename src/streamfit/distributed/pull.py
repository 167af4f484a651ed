"""Sparse pulls: a parameter server sends a worker only the rows that changed since its
last pull, rather than the whole shared state on every push.

A wide sparse model (Factorization Machines at 2^20 features x 16 factors with Adam and
averaging: a 285 MB table) changes a few thousand rows per batch, so shipping it whole on
every push was the bottleneck even for one worker. The server keeps, for each row-sparse
shared tensor (:func:`~streamfit.core.delta.row_sparse`: the tensors a push may carry as
rows), the version (push counter) at which each row last changed; a worker sends the
version of its last pull with its next push and gets back the rows changed after it, as
(row indices, rows), with the small tensors, ``meta`` and counters whole. More than half
the rows changed: the tensor travels whole (:func:`~streamfit.core.delta.sparse_rows`, the
rule pushes follow). A worker with no version (its first pull, or after ``begin``) and any
version from before the server's last ``replace`` gets everything.

Exactness: a worker's rows outside the pulled ones are those it neither changed nor was
sent, that is the server's rows at its last pull, unchanged since; every row it changed
went into its delta (rows that differ from its last pull), was marked by the server when
applied, and so comes back. Its state after a pull is bit for bit what a full pull gives.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from streamfit.core.delta import (
    Delta,
    DeltaRule,
    row_sparse,
    rule_of,
    shared_view,
    sparse_rows,
    state_delta,
)
from streamfit.core.state import State

__all__ = ["Pull", "Replica", "RowVersions"]


@dataclass
class Pull:
    """What a push returns: ``view``, the server's state less what the worker has of its
    own (:func:`~streamfit.core.delta.shared_view`) and less the tensors in ``rows``, sent
    as (row indices, rows) changed since the worker's last pull; and the server's version."""

    view: State
    rows: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    version: int = 0

    @property
    def nbytes(self) -> int:
        parts = [*self.view.tensors.values(), *(t for pair in self.rows.values() for t in pair)]
        return sum(t.numel() * t.element_size() for t in parts)


class RowVersions:
    """The server's side: when each row of each row-sparse shared tensor last changed."""

    def __init__(self, rules: Mapping[str, DeltaRule]) -> None:
        self.rules = rules
        self.version = 0  # bumped by every push and every reset
        self.base = 0  # the version of the last reset: older pulls know nothing of its state
        self.rows: dict[str, torch.Tensor] = {}

    def reset(self, state: State) -> None:
        """``state`` replaced the server's wholesale: every worker needs a full pull."""
        self.version += 1
        self.base = self.version
        self.rows = {
            name: torch.zeros(value.shape[0], dtype=torch.int64, device=value.device)
            for name, value in shared_view(state, self.rules).tensors.items()
            if row_sparse(value)
        }

    def applied(self, delta: Delta) -> None:
        """Record that ``delta`` was applied: the rows it carried changed (a tensor it
        carried whole: every row, as a difference of zero may still flip a -0.0)."""
        self.version += 1
        for name, versions in self.rows.items():
            if name in delta.rows:
                where = delta.rows[name][0].to(versions.device)
                versions.index_fill_(0, where, self.version)
            elif name in delta.tensors:
                versions.fill_(self.version)

    def pull(self, state: State, since: int | None) -> Pull:
        """What a worker whose last pull was at version ``since`` needs of ``state``."""
        view = shared_view(state, self.rules)
        pull = Pull(view, version=self.version)
        if since is None or since < self.base:
            return pull
        for name, versions in self.rows.items():
            where = sparse_rows(versions > since)
            if where is not None:
                pull.rows[name] = (where, view.tensors.pop(name).index_select(0, where))
        return pull


class Replica:
    """A worker's side: the state it last pulled (what its next delta is taken against), the
    server's version of that pull, and which rows of the ``touched`` tensors (an algorithm's
    ``distribution.touched_tensors``: rows are features) training may have changed since."""

    def __init__(
        self,
        state: State,
        rules: Mapping[str, DeltaRule],
        touched: frozenset[str] = frozenset(),
    ) -> None:
        self.rules = rules
        self.pulled = state.clone()
        self.since: int | None = None  # the first pull is a full one
        self.touched = sorted(touched & state.tensors.keys())
        # One flag per feature row: cheaper to keep than the batches' indices, and bounded.
        self.rows: torch.Tensor | None = None  # None: any row may have changed
        if self.touched:
            first = state.tensors[self.touched[0]]
            assert all(state.tensors[n].shape[0] == first.shape[0] for n in self.touched)
            self.rows = torch.zeros(first.shape[0], dtype=torch.bool, device=first.device)
        self.anywhere = self.rows is None

    def touch(self, rows: torch.Tensor | None) -> None:
        """Training changed at most ``rows`` (an algorithm's ``touched_rows``; None: any)."""
        if rows is None:
            self.anywhere = True
        elif not self.anywhere and self.rows is not None:
            self.rows[rows.to(self.rows.device)] = True

    def delta(self, trained: State, *, latest: bool) -> Delta:
        """What training moved the pulled state by (see :func:`state_delta`): the touched
        tensors compared only in the rows :meth:`touch` named since the last pull."""
        candidates: dict[str, torch.Tensor] = {}
        if not self.anywhere and self.rows is not None:
            rows = self.rows.nonzero().squeeze(1)
            candidates = dict.fromkeys(self.touched, rows)
        return state_delta(self.pulled, trained, self.rules, latest=latest, candidates=candidates)

    def receive(self, trained: State, pull: Pull, *, latest: bool) -> State:
        """Continue from the server's state: ``pull``'s rows written into ``trained``'s
        tensors in place, its whole tensors taken as they are, the worker's own ``fixed``
        and ``latest`` tensors kept. ``latest``: whether the push sent those. Returns the
        new state to train (``pull.view``, completed); ``trained`` is spent."""
        state = pull.view
        tensors: dict[str, torch.Tensor] = {}
        pulled = self.pulled.tensors
        for name, value in trained.tensors.items():
            rule = rule_of(self.rules, name, tensor=True)
            if name in pull.rows:
                where, rows = (t.to(value.device) for t in pull.rows[name])
                tensors[name] = value.index_copy_(0, where, rows)
                pulled[name].index_copy_(0, where, rows)
            elif name in state.tensors:
                tensors[name] = state.tensors[name]
                pulled[name] = tensors[name].clone()
            else:
                assert rule in ("fixed", "latest"), f"{name}: shared but not pulled"
                tensors[name] = value
                # Sent: the server has these rows. Not sent: those written since are due.
                if rule == "latest" and latest:
                    pulled[name] = value.clone()
        state.tensors = tensors
        self.pulled.meta = copy.deepcopy(state.meta)
        self.pulled.counters = dict(state.counters)
        self.pulled.trainer = state.trainer.copy()
        self.since = pull.version
        # The state now is the pull, which is the pulled copy: nothing differs from it.
        if self.rows is not None:
            self.rows.zero_()
            self.anywhere = False
        return state
