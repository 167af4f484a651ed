"""The store's connection to its database: SQLite (the embedded default) or PostgreSQL.

>>> str(database_url("postgresql://alice@db.example.com/streamfit"))
'postgresql+psycopg://alice@db.example.com/streamfit'
>>> str(database_url("sqlite:////tmp/streamfit.db"))
'sqlite:////tmp/streamfit.db'
>>> sqlite_file("sqlite:////tmp/streamfit.db"), sqlite_file("sqlite://")
(PosixPath('/tmp/streamfit.db'), None)
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

__all__ = ["create_engine", "database_url", "is_retryable", "shown_url", "sqlite_file"]

#: SQLSTATEs that mean "the transaction lost a race; run it again": serialization failure
#: and deadlock. The guarded changes make running a transaction again harmless.
_RETRYABLE = frozenset({"40001", "40P01"})


def database_url(url: str) -> sa.URL:
    """``url`` with a plain ``postgresql://`` (or ``postgres://``) mapped to psycopg 3, the
    driver streamfit installs; a URL that names its driver is kept as it is."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (absolute); None for other databases, memory, or a URL that
    already speaks SQLite's own ``file:`` URI language."""
    parsed = sa.make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return None
    if name.startswith("file:"):
        return None
    return Path(name).absolute()


def shown_url(url: str) -> str:
    """``url`` fit to print: its password hidden.

    >>> shown_url("postgresql://alice:hunter2@db/streamfit")
    'postgresql://alice:***@db/streamfit'
    """
    return sa.make_url(url).render_as_string(hide_password=True)


def create_engine(url: str) -> Engine:
    """An engine for ``url``. A SQLite file is opened read-write but never created here (the
    store creates it, once, on purpose): a connection made after the file was deleted fails
    instead of starting an empty store in its place."""
    parsed = database_url(url)
    path = sqlite_file(url)
    if path is not None:
        parsed = parsed.set(
            database=f"file:{urllib.parse.quote(str(path))}",
            query={**parsed.query, "mode": "rw", "uri": "true"},
        )
    if parsed.get_backend_name() != "postgresql":
        engine = sa.create_engine(parsed)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(
        parsed,
        # A scheduler uses two connections at a time (its steps, and the notify thread);
        # keeping few idle lets many schedulers share one server's max_connections (100).
        pool_size=2,
        max_overflow=8,
        # A server restart or an idle timeout must not fail the next step's first query.
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10, "application_name": "streamfit"},
    )


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a transaction lost to a concurrent one (worth running again)."""
    orig = getattr(exc, "orig", None)
    return isinstance(exc, sa.exc.DBAPIError) and getattr(orig, "sqlstate", None) in _RETRYABLE


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the lock up front, so two of them queue instead of deadlocking.
    mode = "DEFERRED" if conn.get_execution_options().get("readonly") else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {mode}")
