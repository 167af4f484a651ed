"""The database a store lives in: opening it (a SQLite file, or a URL), bringing its schema
to this version's, its identity, and the transactions every part of the store runs in.

SQLite runs in WAL mode, and write transactions start with ``BEGIN IMMEDIATE`` so that two
writers queue instead of deadlocking. On PostgreSQL a claim (:meth:`StoreBase._claim`) locks
the rows it reads with ``FOR NO KEY UPDATE SKIP LOCKED`` for as long as a step works on them.
Transactions run at PostgreSQL's default READ COMMITTED: the guarded updates need no more.
"""

from __future__ import annotations

import errno
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from streamfit.jobs.database import create_engine, is_retryable, shown_url, sqlite_file
from streamfit.jobs.errors import (
    NoStore,
    NotAStore,
    StoreError,
    StoreMissing,
    StoreReadOnly,
    StoreReplaced,
    StoreUnavailable,
)
from streamfit.jobs.store_claims import Claim
from streamfit.jobs.tables import store_identity

__all__ = ["StoreBase"]

T = TypeVar("T")
R = TypeVar("R")

#: Any key will do, as long as every streamfit process uses the same one: it serialises the
#: migrations of schedulers that start at once against a new database.
_MIGRATION_LOCK = 0x5F5EA3F1
#: Runs of a transaction that lost to a concurrent one (deadlock, serialization failure).
_TRIES = 5


class StoreBase:
    """A store's database, open. ``create``: make the store if there is none (a new SQLite
    file, or the schema in an empty database); else :class:`NoStore`. An existing store is
    migrated to this version's schema.
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
    def open(cls, home: str | Path, url: str | None = None, *, create: bool = True) -> Self:
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
            yield Claim(items, self._transaction, None)
            return
        # NO KEY UPDATE, not UPDATE: the lock must not block the foreign-key checks of rows
        # that others insert meanwhile (an event of a locked job, say).
        locked = query.with_for_update(skip_locked=True, key_share=True)
        with self._write() as conn:
            items = [convert(r) for r in conn.execute(locked).mappings()]
            yield Claim(items, self._transaction, conn)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as raw:
            conn = raw.execution_options(readonly=True)
            with conn.begin():
                yield conn


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
