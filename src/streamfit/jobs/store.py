"""The job store: SQLAlchemy over SQLite (the embedded default) or PostgreSQL.

Every status change is a guarded update (``... WHERE id = ? AND status = ? AND version = ?``)
that writes its event row in the same transaction, so concurrent schedulers and a crash at any
instant can neither lose a change nor apply one twice. SQLite runs in WAL mode, and write
transactions start with ``BEGIN IMMEDIATE`` so that two writers queue instead of deadlocking.

On PostgreSQL, where several schedulers on several machines may share the store, the steps
take their work with :meth:`Store.claim_due` and friends: ``SELECT ... FOR NO KEY UPDATE SKIP
LOCKED`` in a transaction that lasts as long as the step works on those rows, so each
scheduler gets rows no other one holds instead of all of them fighting over the first page.
Transactions run at PostgreSQL's default READ COMMITTED: the guarded updates need no more.

A store has an identity (:attr:`Store.id`, written when it is created), which run names carry;
:meth:`Store.verify` tells a long-lived process that its store was deleted, replaced or reset
under it. Opening a store that cannot be used (missing, read-only, corrupt, not streamfit's)
raises a :class:`~streamfit.jobs.errors.StoreError` that says what to do.

>>> store = Store("sqlite://")
>>> from streamfit.jobs.spec import JobSpec
>>> spec = JobSpec(name="hello", owner="a@example.com", command=["echo", "hi"])
>>> sub = store.submit([spec], now=0.0)
>>> store.get(sub.job_ids[0]).status
<Status.NEW: 'New'>
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from streamfit.jobs.database import create_engine, is_retryable, shown_url, sqlite_file
from streamfit.jobs.errors import (
    NoStore,
    NoSuchJob,
    NotAStore,
    StaleJob,
    StoreError,
    StoreMissing,
    StoreReadOnly,
    StoreReplaced,
    StoreUnavailable,
)
from streamfit.jobs.records import Change, Event, Job, Notification, Submission
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import ACTIVE, Status, check_transition
from streamfit.jobs.tables import (
    events,
    jobs,
    metadata,
    notifications,
    store_identity,
    submissions,
)

__all__ = ["Change", "Claim", "Event", "Job", "Notification", "Store", "Submission"]

T = TypeVar("T")
R = TypeVar("R")

#: Any key will do, as long as every streamfit process uses the same one: it serialises the
#: migrations of schedulers that start at once against a new database.
_MIGRATION_LOCK = 0x5F5EA3F1
#: Runs of a transaction that lost to a concurrent one (deadlock, serialization failure).
_TRIES = 5


@dataclass
class Claim(Generic[T]):
    """Rows a step has taken to work on (``items``), and the way to record what it did.

    On PostgreSQL the rows stay locked, and what the step records is written in the same
    transaction, until the ``with`` block ends; another scheduler skips them meanwhile. On
    SQLite (one writer at a time anyway) the rows are only read, and each record is its own
    guarded transaction, as before.
    """

    items: list[T]
    _store: Store
    _conn: Connection | None

    def apply(self, changes: Sequence[Change], now: float) -> list[Job | None]:
        """As :meth:`Store.apply`."""
        if self._conn is None:
            return self._store.apply(changes, now)
        return [self._store._apply(self._conn, change, now) for change in changes]

    def record_notifications(
        self, event: Event, rows: Sequence[Mapping[str, Any]], now: float
    ) -> int:
        """As :meth:`Store.record_notifications`."""
        if self._conn is None:
            return self._store.record_notifications(event, rows, now)
        return self._store._record_notifications(self._conn, event, rows, now)


class Store:
    """Jobs, their events and notifications, in one database.

    ``create``: make the store if there is none (a new SQLite file, or the schema in an empty
    database); else :class:`NoStore`. An existing store is migrated to this version's schema.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        #: The SQLite file, if the store is one; what errors name.
        self.path = sqlite_file(url)
        self.where = str(self.path) if self.path is not None else shown_url(url)
        self._file: tuple[int, int] | None = None  # the open file's device and inode
        if self.path is not None:
            self._make_file(self.path, create)
        self.engine: Engine = create_engine(url)
        #: Whether claims lock rows and skip those locked by others (PostgreSQL).
        self.skip_locked = self.engine.dialect.name == "postgresql"
        try:
            self._migrate(create)
            #: The store's identity (hex uuid), written when it was created.
            self.id = self._read_id()
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise self._store_error(exc) or StoreUnavailable(
                f"{self.where}: cannot open the store: {_first_line(exc)}"
            ) from exc
        except BaseException:
            self.engine.dispose()
            raise
        self._file = _file_id(self.path) if self.path is not None else None

    @classmethod
    def open(cls, home: str | Path, url: str | None = None, *, create: bool = True) -> Store:
        """The store at ``url``, else the SQLite file ``home/streamfit.db``.

        A home whose ``runs/`` or ``jobs/`` hold something but whose store file is missing
        raises :class:`StoreMissing`: a new store there would start its ids again at 1 beside
        the runs of the lost one.
        """
        if url is None:
            home = Path(home)
            path = home / "streamfit.db"
            if not path.exists():
                held = [home / d for d in ("runs", "jobs") if _has_entries(home / d)]
                if held:
                    raise StoreMissing(
                        f"{path} is missing, but {' and '.join(map(str, held))} hold the runs "
                        "of the store that was there: restore the file (from a backup), or move "
                        f"{home / 'runs'} and {home / 'jobs'} away to start a new, empty store"
                    )
                if create:
                    home.mkdir(mode=0o700, parents=True, exist_ok=True)
            url = f"sqlite:///{path}"
        return cls(url, create=create)

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of :attr:`id`: enough to tell the stores of one machine or
        cluster apart in run names (a full match is checked where a run records it)."""
        return self.id[:8]

    def _make_file(self, path: Path, create: bool) -> None:
        if path.exists():
            return
        if not create:
            raise NoStore(f"no store at {path} yet")
        if not path.parent.is_dir():
            raise StoreUnavailable(f"{path}: cannot create the store: no folder {path.parent}")
        try:  # an empty file is an empty SQLite database; private: specs may hold env values
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as exc:
            if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
                raise StoreReadOnly(
                    f"{path}: cannot create the store: {exc.strerror} (the folder is read-only "
                    "for this user)"
                ) from None
            raise StoreUnavailable(f"{path}: cannot create the store: {exc.strerror}") from None

    def _migrate(self, create: bool) -> None:
        """Bring the schema to this version's head; a store already there is only read (so a
        read-only store can still be listed)."""
        from alembic import command
        from alembic.config import Config
        from alembic.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        script = ScriptDirectory.from_config(cfg)
        with self._read() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            current = None
            if "alembic_version" in tables:
                current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current == script.get_current_head():
            return
        if current is None:
            others = sorted(tables - {"alembic_version"})
            if others:
                raise NotAStore(
                    f"{self.where}: not a streamfit store (a database with other tables: "
                    f"{', '.join(others[:5])}{', ...' if len(others) > 5 else ''})"
                )
            if not create:
                raise NoStore(f"no store at {self.where} yet")
        elif current not in {rev.revision for rev in script.walk_revisions()}:
            raise NotAStore(
                f"{self.where}: schema revision {current!r} is unknown to this streamfit (the "
                "store of a newer version, or another application's database)"
            )
        with self.engine.begin() as conn:
            if self.skip_locked:  # SQLite's BEGIN IMMEDIATE already lets one in at a time
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def _read_id(self) -> str:
        with self._read() as conn:
            ids = list(conn.execute(sa.select(store_identity.c.id)).scalars())
        if len(ids) != 1:
            raise NotAStore(f"{self.where}: {len(ids)} store ids instead of one: not usable")
        return str(ids[0])

    def verify(self) -> None:
        """Raise :class:`StoreReplaced` if the store was deleted, replaced by another file,
        or reset (another id) since it was opened. Cheap: a ``stat`` and a one-row query."""
        if self.path is not None:
            now = _file_id(self.path)
            if now is None:
                raise StoreReplaced(
                    f"the store file {self.path} was deleted while in use: stopping, as "
                    "nothing more could be recorded; restore the file, then start again"
                )
            if now != self._file:
                raise StoreReplaced(
                    f"the store file {self.path} was replaced by another file while in use: "
                    "stopping; start again to use the new file"
                )
        try:
            ids = self._identity()
        except (sa.exc.ProgrammingError, NotAStore):  # its tables were dropped
            ids = []
        if ids != [self.id]:
            found = ", ".join(ids) or "none"
            raise StoreReplaced(
                f"the store at {self.where} changed identity while in use (it was {self.id}, "
                f"now {found}): it was reset or replaced; stopping, start again to use it"
            )

    def _identity(self) -> list[str]:
        with self._read() as conn:
            return [str(i) for i in conn.execute(sa.select(store_identity.c.id)).scalars()]

    def _store_error(self, exc: sa.exc.DBAPIError) -> StoreError | None:
        """A SQLite error that means the store itself cannot be used, as a StoreError."""
        if self.path is None or is_retryable(exc):
            return None
        text = _first_line(exc)
        low = text.lower()
        if "readonly database" in low or "read-only" in low:
            return StoreReadOnly(
                f"{self.path}: the store is read-only for this user ({text}): make the file "
                "and its folder writable (SQLite writes its journal beside the file)"
            )
        if "file is not a database" in low or "malformed" in low:
            return NotAStore(
                f"{self.path}: not a streamfit store ({text}): a corrupt file, or another "
                "kind of file; restore it from a backup, or move it away"
            )
        if "no such table" in low:
            return NotAStore(f"{self.path}: not a streamfit store ({text})")
        if "unable to open database file" in low:
            if not self.path.exists():
                return StoreReplaced(f"the store file {self.path} is gone ({text})")
            if not os.access(self.path.parent, os.W_OK):
                return StoreReadOnly(
                    f"{self.path}: its folder {self.path.parent} is read-only for this user, "
                    "and SQLite writes its journal beside the file: make the folder writable"
                )
            return StoreUnavailable(f"{self.path}: cannot open the store ({text})")
        return None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        # A connection kept in the pool still reaches a deleted file: a stat (a microsecond)
        # keeps every transaction from writing into, or reading from, a store that is gone.
        if self.path is not None and self._file is not None and _file_id(self.path) != self._file:
            self.verify()
        try:
            yield
        except sa.exc.DBAPIError as exc:
            error = self._store_error(exc)
            if error is None:
                raise
            raise error from exc

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._errors(), self.engine.begin() as conn:
            yield conn

    def _transaction(self, work: Callable[[Connection], R]) -> R:
        """``work`` in one write transaction, run again if it lost a race to another
        transaction (a deadlock or serialization failure: PostgreSQL aborts one of the two)."""
        for attempt in range(1, _TRIES + 1):
            try:
                with self._write() as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:  # (store errors left _write as StoreError)
                if attempt == _TRIES or not is_retryable(exc):
                    raise
                time.sleep(random.uniform(0, 0.05 * attempt))  # apart, so they meet no more
        raise AssertionError("unreachable")

    @contextmanager
    def _claim(
        self, query: sa.Select[Any], convert: Callable[[Mapping[Any, Any]], T]
    ) -> Iterator[Claim[T]]:
        if not self.skip_locked:
            with self._read() as conn:
                items = [convert(r) for r in conn.execute(query).mappings()]
            yield Claim(items, self, None)
            return
        # NO KEY UPDATE, not UPDATE: the lock must not block the foreign-key checks of rows
        # that others insert meanwhile (an event of a locked job, say).
        locked = query.with_for_update(skip_locked=True, key_share=True)
        with self._write() as conn:
            items = [convert(r) for r in conn.execute(locked).mappings()]
            yield Claim(items, self, conn)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as raw:
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
        with self._read() as conn:
            return [Job.from_row(r) for r in conn.execute(_due(now, limit)).mappings()]

    def claim_due(self, now: float, limit: int) -> contextlib.AbstractContextManager[Claim[Job]]:
        """The launch step's work: as :meth:`due`, less the jobs another scheduler holds."""
        return self._claim(_due(now, limit), Job.from_row)

    def claim_jobs(
        self, status: Sequence[Status], *, final: bool | None = None, after: int = 0, limit: int
    ) -> contextlib.AbstractContextManager[Claim[Job]]:
        """Up to ``limit`` jobs in ``status`` with an id above ``after``, by id, less the
        jobs another scheduler holds (the monitor and retry steps' work, a page at a time)."""
        query = (
            jobs.select()
            .where(jobs.c.status.in_([s.value for s in status]), jobs.c.id > after)
            .order_by(jobs.c.id)
            .limit(limit)
        )
        if final is not None:
            query = query.where(jobs.c.final == final)
        return self._claim(query, Job.from_row)

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
        return self._transaction(lambda conn: [self._apply(conn, c, now) for c in changes])

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
        self._transaction(
            lambda conn: conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.final.is_(False))
                .values(stop_requested=True, version=jobs.c.version + 1)
            )
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
        exclude_channels: Sequence[str] = (),
    ) -> list[Notification]:
        query = notifications.select().order_by(notifications.c.id)
        if status is not None:
            query = query.where(notifications.c.status == status)
        if exclude_channels:
            query = query.where(notifications.c.channel.not_in(list(exclude_channels)))
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
        result = self._transaction(
            lambda conn: conn.execute(
                notifications.update()
                .where(
                    notifications.c.id == note.id,
                    notifications.c.status == note.status,
                    notifications.c.attempts == note.attempts,
                )
                .values(status=status, **values)
            )
        )
        return result.rowcount == 1

    def claim_notification(
        self, now: float, lease_until: float, channels: Sequence[str]
    ) -> Notification | None:
        """Take the oldest due ``pending`` notification of one of ``channels`` to send:
        ``sending`` until ``lease_until``, one more attempt counted. None when there is none
        (on PostgreSQL: none that another sender is not taking at this moment)."""
        query = (
            notifications.select()
            .where(
                notifications.c.status == "pending",
                notifications.c.next_try_at <= now,
                notifications.c.channel.in_(list(channels)),
            )
            .order_by(notifications.c.id)
            .limit(1)
        )
        if self.skip_locked:
            query = query.with_for_update(skip_locked=True)

        def take(conn: Connection) -> Notification | None:
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            note = Notification(**row)
            claimed = replace(
                note, status="sending", attempts=note.attempts + 1, next_try_at=lease_until
            )
            conn.execute(
                notifications.update()
                .where(notifications.c.id == note.id)
                .values(status="sending", attempts=claimed.attempts, next_try_at=lease_until)
            )
            return claimed

        return self._transaction(take)

    def unnotified_final_events(self, limit: int = 1000) -> list[Event]:
        """Events that made a job terminal and whose notifications are not yet recorded."""
        with self._read() as conn:
            return [Event(**r) for r in conn.execute(_unnotified(limit)).mappings()]

    def claim_unnotified_final_events(
        self, limit: int = 1000
    ) -> contextlib.AbstractContextManager[Claim[Event]]:
        """The notify step's recording work: as :meth:`unnotified_final_events`, less the
        events another scheduler holds."""
        return self._claim(_unnotified(limit), lambda row: Event(**row))

    def record_notifications(
        self, event: Event, rows: Sequence[Mapping[str, Any]], now: float
    ) -> int:
        """Record ``event``'s notifications and mark it notified, in one transaction; a row
        already recorded (same key, channel, recipient) is left as it is. Returns new rows."""
        return self._transaction(lambda conn: self._record_notifications(conn, event, rows, now))

    def _record_notifications(
        self, conn: Connection, event: Event, rows: Sequence[Mapping[str, Any]], now: float
    ) -> int:
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


def _due(now: float, limit: int) -> sa.Select[Any]:
    return (
        jobs.select()
        .where(jobs.c.status == Status.NEW.value, jobs.c.next_attempt_at <= now)
        .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)
        .limit(limit)
    )


def _unnotified(limit: int) -> sa.Select[Any]:
    return (
        events.select()
        .where(events.c.final.is_(True), events.c.notified.is_(False))
        .order_by(events.c.id)
        .limit(limit)
    )


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _file_id(path: Path) -> tuple[int, int] | None:
    """The file's device and inode: another file at the same path has others."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _has_entries(folder: Path) -> bool:
    try:
        return any(not p.name.startswith(".") for p in folder.iterdir())
    except OSError:
        return False
