"""What a step takes and what it writes back: a :class:`Claim` (rows taken to work on), and
the two writes a step makes, in the claim's transaction or in one of their own: a guarded
change of a job with its event row (:func:`apply_change`), and an event's notification rows
(:func:`insert_notifications`).

Every status change is a guarded update (``... WHERE id = ? AND status = ? AND version = ?``)
that writes its event row in the same transaction, so concurrent schedulers and a crash at any
instant can neither lose a change nor apply one twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.engine import Connection

from streamfit.jobs.records import Change, Event, Failures, Job
from streamfit.jobs.status import Status, check_transition
from streamfit.jobs.tables import events, jobs, notifications

__all__ = ["Claim", "apply_change", "insert_notifications"]

T = TypeVar("T")
R = TypeVar("R")


class Transaction(Protocol):
    """Runs ``work`` in a write transaction of its own (tried again if it lost a race)."""

    def __call__(self, work: Callable[[Connection], R]) -> R: ...


@dataclass
class Claim(Generic[T]):
    """Rows a step has taken to work on (``items``), and the way to record what it did.

    On PostgreSQL the rows stay locked, and what the step records is written in the same
    transaction, until the ``with`` block ends; another scheduler skips them meanwhile. On
    SQLite (one writer at a time anyway) the rows are only read, and each record is its own
    guarded transaction.
    """

    items: list[T]
    _transaction: Transaction
    _conn: Connection | None

    def _write(self, work: Callable[[Connection], R]) -> R:
        return work(self._conn) if self._conn is not None else self._transaction(work)

    def apply(self, changes: Sequence[Change], now: float) -> list[Job | None]:
        """As :meth:`Store.apply`."""
        return self._write(lambda conn: [apply_change(conn, c, now) for c in changes])

    def record_notifications(
        self, event: Event, rows: Sequence[Mapping[str, Any]], now: float
    ) -> int:
        """As :meth:`Store.record_notifications`."""
        return self._write(lambda conn: insert_notifications(conn, event, rows, now))


def apply_change(conn: Connection, change: Change, now: float) -> Job | None:
    """Write ``change`` and its event row; None if the job moved on since it was read (its
    status or version is not the one ``change.job`` has)."""
    job, to = change.job, change.to
    if to != job.status:
        check_transition(job.id, job.status, to)
    values = dict(change.values)
    values.update(status=to.value, version=job.version + 1)
    if to in (Status.COMPLETED, Status.STOPPED):
        values["final"] = True
    elif to == Status.NEW:
        values["final"] = False
    final = bool(values.get("final", job.final)) and not job.final
    result = conn.execute(
        jobs.update()
        .where(
            jobs.c.id == job.id,
            jobs.c.status == job.status.value,
            jobs.c.version == job.version,
        )
        .values(**_columns(values))
    )
    if result.rowcount != 1:
        return None
    conn.execute(
        events.insert(),
        {
            "job_id": job.id,
            "at": now,
            "from_status": job.status.value,
            "to_status": to.value,
            "attempt": values.get("attempt", job.attempt),
            # a failure's kind, or why a job waits (capacity) when that is what changed
            "failure_kind": values.get("failure_kind", job.failure_kind)
            if to == Status.FAILED
            else values.get("failure_kind"),
            "detail": change.detail,
            "final": final,
            "notified": False,
        },
    )
    values["status"] = to
    return replace(job, **values)


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as the jobs table holds them (:class:`Failures` as JSON)."""
    if "failures" not in values:
        return values
    failures = values["failures"]
    if not isinstance(failures, Failures):
        raise TypeError(f"failures must be a Failures, not {type(failures).__name__}")
    return {**values, "failures": failures.to_json()}


def insert_notifications(
    conn: Connection, event: Event, rows: Sequence[Mapping[str, Any]], now: float
) -> int:
    """Record ``event``'s notification rows (a row already there is left as it is) and mark
    the event notified; returns the rows added."""
    full = [
        {
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_try_at": now,
            "job_id": None,
            "submission": None,
            **r,
        }
        for r in rows
    ]
    added = 0
    if full:
        added = int(conn.execute(_insert_ignore(conn), full).rowcount or 0)
    conn.execute(events.update().where(events.c.id == event.id).values(notified=True))
    return added


def _insert_ignore(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(notifications).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(notifications).on_conflict_do_nothing()
