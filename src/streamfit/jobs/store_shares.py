"""The store's side of fair share: charging runs to their shares, each share's decayed usage,
what each share's running jobs hold, and the launch step's queue (the head of every share's).

Usage is kept in ``share_usage`` (one row a share, decayed to its ``at``), and each job's run
is charged up to its ``charged_at``, so a pass reads the jobs that hold capacity (and those
that just ended), never the history. A charge is one transaction: the job's ``charged_at``
moves only where it is still what was read, and the share's row is locked while it is
updated, so schedulers side by side, or one that crashes, never charge a second twice.
A run is charged from its start (time in a backend's queue is free) to its end where the
job still says when it ended; one that is retried before a pass sees it end loses the
moments since the last pass (at most one launch interval).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from streamfit.jobs.records import Job
from streamfit.jobs.shares import decay, decayed_charge, run_cost
from streamfit.jobs.spec import Resources
from streamfit.jobs.status import ACTIVE, Status
from streamfit.jobs.store_base import StoreBase
from streamfit.jobs.store_claims import Claim
from streamfit.jobs.tables import jobs, share_usage

__all__ = ["ShareQueries"]

_ACTIVE = sorted(s.value for s in ACTIVE)


class ShareQueries(StoreBase):
    """Fair share's reads and writes (part of :class:`~streamfit.jobs.store.Store`)."""

    def charge_usage(self, now: float, half_life: float, capacity: Resources | None) -> int:
        """Charge every run its time since it was last charged; returns the runs charged."""
        return self._transaction(lambda conn: self._charge(conn, now, half_life, capacity))

    def _charge(
        self, conn: Connection, now: float, half_life: float, capacity: Resources | None
    ) -> int:
        query = sa.select(
            jobs.c.id,
            jobs.c.share,
            jobs.c.spec["resources"].label("resources"),
            jobs.c.status,
            jobs.c.charged_at,
            jobs.c.started_at,
            jobs.c.ended_at,
        ).where(jobs.c.charged_at.is_not(None))
        if self.skip_locked:  # rows another scheduler holds are charged on a later pass
            query = query.with_for_update(skip_locked=True, key_share=True)
        added: dict[str, float] = defaultdict(float)
        charged = 0
        for row in conn.execute(query).all():
            if row.status == Status.LAUNCHED.value and row.started_at is None:
                continue  # waiting in the backend's queue: it holds nothing yet
            active = row.status in _ACTIVE
            start = max(float(row.charged_at), float(row.started_at or row.charged_at))
            # never back: a scheduler whose clock is behind another's charges nothing twice
            end = max(start, now if active else float(row.ended_at or start))
            done = conn.execute(
                jobs.update()
                .where(jobs.c.id == row.id, jobs.c.charged_at == row.charged_at)
                .values(charged_at=end if active else None)
            )
            if done.rowcount != 1:
                continue
            cost = run_cost(Resources.model_validate(row.resources), capacity)
            added[row.share] += decayed_charge(cost, start, end, now, half_life)
            charged += 1
        for share, amount in sorted(added.items()):  # in one order: no deadlocks
            _add_usage(conn, share, amount, now, half_life)
        return charged

    def share_usage(self, now: float, half_life: float) -> dict[str, float]:
        """Each share's usage, decayed to ``now`` (shares that never ran are not listed)."""
        with self._read() as conn:
            rows = conn.execute(sa.select(share_usage)).all()
        return {r.share: decay(r.usage, now - r.at, half_life) for r in rows}

    def held_by_share(self) -> list[tuple[str, Resources]]:
        """The share and resources of every job that holds capacity (Launched, InProgress)."""
        query = sa.select(jobs.c.share, jobs.c.spec["resources"]).where(jobs.c.status.in_(_ACTIVE))
        with self._read() as conn:
            return [(s, Resources.model_validate(r)) for s, r in conn.execute(query)]

    def waiting_by_share(self) -> dict[str, int]:
        """How many New jobs each share has."""
        query = (
            sa.select(jobs.c.share, sa.func.count())
            .where(jobs.c.status == Status.NEW.value)
            .group_by(jobs.c.share)
        )
        with self._read() as conn:
            return {s: int(n) for s, n in conn.execute(query)}

    def claim_queue(self, now: float, limit: int) -> contextlib.AbstractContextManager[Claim[Job]]:
        """The launch step's work: the first due jobs of every share (by priority, then age),
        about ``limit`` in all and at least two a share, less the jobs another scheduler
        holds; in no order."""
        due = (jobs.c.status == Status.NEW.value, jobs.c.next_attempt_at <= now)
        with self._read() as conn:
            shares = conn.execute(sa.select(sa.func.count(sa.distinct(jobs.c.share))).where(*due))
            per_share = max(2, limit // max(1, int(shares.scalar_one())))
        ranked = (
            sa.select(
                jobs.c.id,
                sa.func.row_number()
                .over(
                    partition_by=jobs.c.share,
                    order_by=(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id),
                )
                .label("rank"),
            )
            .where(*due)
            .subquery("ranked")
        )
        heads = sa.select(ranked.c.id).where(ranked.c.rank <= per_share)
        # (the status again: a row another scheduler launched since is not ours to launch)
        query: sa.Select[Any] = jobs.select().where(
            jobs.c.id.in_(heads), jobs.c.status == Status.NEW.value
        )
        return self._claim(query, Job.from_row)


def _add_usage(conn: Connection, share: str, amount: float, now: float, half_life: float) -> None:
    """Add ``amount`` (as of ``now``) to ``share``'s usage, decaying what it had."""
    conn.execute(_insert_ignore(conn), {"share": share, "usage": 0.0, "at": now})
    query = sa.select(share_usage).where(share_usage.c.share == share)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one()
    at = max(float(row.at), now)  # a scheduler whose clock is behind decays nothing
    conn.execute(
        share_usage.update()
        .where(share_usage.c.share == share)
        .values(usage=decay(float(row.usage), now - float(row.at), half_life) + amount, at=at)
    )


def _insert_ignore(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(share_usage).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(share_usage).on_conflict_do_nothing()
