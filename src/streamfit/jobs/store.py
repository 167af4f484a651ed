"""The job store: SQLAlchemy over SQLite (the embedded default) or PostgreSQL.

Every status change is a guarded update (``... WHERE id = ? AND status = ? AND version = ?``)
that writes its event row in the same transaction, so concurrent schedulers and a crash at any
instant can neither lose a change nor apply one twice. SQLite runs in WAL mode, and write
transactions start with ``BEGIN IMMEDIATE`` so that two writers queue instead of deadlocking.

>>> store = Store("sqlite://")
>>> from streamfit.jobs.spec import JobSpec
>>> spec = JobSpec(name="hello", owner="a@example.com", command=["echo", "hi"])
>>> sub = store.submit([spec], now=0.0)
>>> store.get(sub.job_ids[0]).status
<Status.NEW: 'New'>
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from streamfit.jobs.errors import NoSuchJob, StaleJob
from streamfit.jobs.records import Change, Event, Job, Notification, Submission
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import ACTIVE, Status, check_transition
from streamfit.jobs.tables import events, jobs, metadata, notifications, submissions

__all__ = ["Change", "Event", "Job", "Notification", "Store", "Submission"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = "DEFERRED" if conn.get_execution_options().get("readonly") else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {mode}")


class Store:
    """Jobs, their events and notifications, in one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = sa.create_engine(url)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self._migrate()

    @classmethod
    def open(cls, home: str | Path, url: str | None = None) -> Store:
        """The store at ``url``, else the SQLite file ``home/streamfit.db``."""
        if url is None:
            Path(home).mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{Path(home) / 'streamfit.db'}"
        return cls(url)

    def _migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as raw:
            conn = raw.execution_options(readonly=True)
            with conn.begin():
                yield conn

    # -- submission ------------------------------------------------------------------------

    def submit(self, specs: Sequence[JobSpec], now: float) -> Submission:
        """Store ``specs`` as New jobs of one submission, in one transaction."""
        sub_id = uuid.uuid4().hex[:16]
        digest = next((s.notify.model_dump() for s in specs if s.notify.digest), None)
        rows = [
            {
                "name": s.name,
                "owner": s.owner,
                "submission": sub_id,
                "spec": s.model_dump(mode="json"),
                "status": Status.NEW.value,
                "final": False,
                "attempt": 1,
                "max_attempts": 1 + s.retry.algorithm + s.retry.infrastructure,
                "failures": {},
                "stop_requested": False,
                "priority": s.priority,
                "created_at": now,
                "next_attempt_at": now,
                "tags": s.tags,
                "version": 1,
            }
            for s in specs
        ]
        with self._write() as conn:
            conn.execute(
                submissions.insert(),
                {
                    "id": sub_id,
                    "created_at": now,
                    "n_jobs": len(specs),
                    "owner": specs[0].owner,
                    "digest": digest,
                },
            )
            ids = [r.id for r in conn.execute(jobs.insert().returning(jobs.c.id), rows)]
            conn.execute(
                events.insert(),
                [
                    {
                        "job_id": i,
                        "at": now,
                        "from_status": None,
                        "to_status": "New",
                        "attempt": 1,
                        "detail": "submitted",
                        "final": False,
                        "notified": False,
                    }
                    for i in ids
                ],
            )
        return Submission(sub_id, sorted(ids))

    # -- reading ---------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with self._read() as conn:
            row = conn.execute(jobs.select().where(jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise NoSuchJob(f"no job {job_id}")
        return Job.from_row(row)

    def find(
        self,
        *,
        status: Status | Sequence[Status] | None = None,
        owner: str | None = None,
        submission: str | None = None,
        tags: Mapping[str, str] | None = None,
        final: bool | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Job]:
        query = jobs.select()
        if status is not None:
            wanted = [status] if isinstance(status, Status) else list(status)
            query = query.where(jobs.c.status.in_([s.value for s in wanted]))
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if submission is not None:
            query = query.where(jobs.c.submission == submission)
        for key, value in (tags or {}).items():
            query = query.where(jobs.c.tags[key].as_string() == value)
        if final is not None:
            query = query.where(jobs.c.final == final)
        query = query.order_by(jobs.c.id.desc() if newest_first else jobs.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [Job.from_row(r) for r in conn.execute(query).mappings()]

    def due(self, now: float, limit: int = 1000) -> list[Job]:
        """New jobs whose next attempt has come, by priority then age."""
        query = (
            jobs.select()
            .where(jobs.c.status == Status.NEW.value, jobs.c.next_attempt_at <= now)
            .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [Job.from_row(r) for r in conn.execute(query).mappings()]

    def active(self) -> list[Job]:
        return self.find(status=sorted(ACTIVE))

    def events(self, job_id: int | None = None, since: float | None = None) -> list[Event]:
        query = events.select().order_by(events.c.id)
        if job_id is not None:
            query = query.where(events.c.job_id == job_id)
        if since is not None:
            query = query.where(events.c.at >= since)
        with self._read() as conn:
            return [Event(**r) for r in conn.execute(query).mappings()]

    def submission_jobs(self, submission: str) -> list[Job]:
        return self.find(submission=submission)

    def submission_digest(self, submission: str) -> dict[str, Any] | None:
        """The notify settings of a digest submission; None for per-job notifications."""
        query = sa.select(submissions.c.digest).where(submissions.c.id == submission)
        with self._read() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else dict(value)

    # -- guarded changes -------------------------------------------------------------------

    def apply(self, changes: Sequence[Change], now: float) -> list[Job | None]:
        """Apply guarded changes in one transaction; a change lost to another writer (the job
        moved on since it was read) is skipped and comes back as ``None``."""
        out: list[Job | None] = []
        with self._write() as conn:
            for change in changes:
                out.append(self._apply(conn, change, now))
        return out

    def transition(
        self, job: Job, to: Status, now: float, detail: str | None = None, **values: Any
    ) -> Job:
        """One guarded change; :class:`StaleJob` if another writer changed the job first."""
        (done,) = self.apply([Change(job, to, detail, values)], now)
        if done is None:
            raise StaleJob(f"job {job.id} changed since it was read (was {job.status})")
        return done

    def _apply(self, conn: Connection, change: Change, now: float) -> Job | None:
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
            .values(**values)
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

    def request_stop(self, job_id: int) -> Job:
        """Mark a job to be stopped; the steps act on the mark."""
        with self._write() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.final.is_(False))
                .values(stop_requested=True, version=jobs.c.version + 1)
            )
        return self.get(job_id)

    # -- notifications ---------------------------------------------------------------------

    def notifications(
        self,
        *,
        status: str | None = None,
        due: float | None = None,
        job_id: int | None = None,
        limit: int | None = None,
    ) -> list[Notification]:
        query = notifications.select().order_by(notifications.c.id)
        if status is not None:
            query = query.where(notifications.c.status == status)
        if due is not None:
            query = query.where(notifications.c.next_try_at <= due)
        if job_id is not None:
            query = query.where(notifications.c.job_id == job_id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [Notification(**r) for r in conn.execute(query).mappings()]

    def mark_notification(self, note: Notification, status: str, now: float, **values: Any) -> bool:
        """Guarded change of a notification's status; False if another sender moved it."""
        with self._write() as conn:
            result = conn.execute(
                notifications.update()
                .where(
                    notifications.c.id == note.id,
                    notifications.c.status == note.status,
                    notifications.c.attempts == note.attempts,
                )
                .values(status=status, **values)
            )
        return result.rowcount == 1

    def unnotified_final_events(self, limit: int = 1000) -> list[Event]:
        """Events that made a job terminal and whose notifications are not yet recorded."""
        query = (
            events.select()
            .where(events.c.final.is_(True), events.c.notified.is_(False))
            .order_by(events.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [Event(**r) for r in conn.execute(query).mappings()]

    def record_notifications(
        self, event: Event, rows: Sequence[Mapping[str, Any]], now: float
    ) -> int:
        """Record ``event``'s notifications and mark it notified, in one transaction; a row
        already recorded (same key, channel, recipient) is left as it is. Returns new rows."""
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
        with self._write() as conn:
            added = 0
            if full:
                added = int(conn.execute(self._insert_ignore(), full).rowcount or 0)
            conn.execute(events.update().where(events.c.id == event.id).values(notified=True))
        return added

    def _insert_ignore(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(notifications).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(notifications).on_conflict_do_nothing()

    # -- maintenance -----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        query = sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
        with self._read() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    @staticmethod
    def schema() -> sa.MetaData:
        return metadata
