"""SQL: the rows of a query over a SQLAlchemy URL, streamed a partition at a time.

The URI is ``<SQLAlchemy URL>#<query>``; the query is sent to the driver as written, once it
is known to be one query that reads (:mod:`streamfit.data.sqlguard`), in a read-only
session::

    >>> uri = "sqlite:///train.db#SELECT label, x1, x2 FROM train ORDER BY id"
    >>> source = open_source(uri)  # doctest: +SKIP
    >>> for chunk in source.read(): ...  # doctest: +SKIP

The label is ``label_column`` (by name) or else the first column; every other column is a
feature, in order (unlabelled data: every column is). Values must be numbers (booleans,
integers, decimals and numeric strings are converted to float32); a NULL or anything else is a
bad row, named by its 1-based row in the result and its column. Rows are fetched with a
server-side cursor where the driver has one, ``block_bytes // (8 * columns)`` rows at a time
(at most 65,536), so memory is bounded by one partition, never the whole result.

A position is the 0-based row index in the result. Resuming skips (fetches and discards) the
rows before it, so the query must return its rows in the same order every time: use ORDER BY.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from itertools import chain
from numbers import Number
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, CursorResult, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from streamfit.data.base import Source, SourceOptions
from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.schema import Schema
from streamfit.data.series_long import NOT_FOR_FORECASTS
from streamfit.data.series_rows import read_long_sql
from streamfit.data.sqlguard import check_query, read_only_statements
from streamfit.errors import ConfigError, DataError

__all__ = ["MAX_ROWS_PER_CHUNK", "SQLSource"]

MAX_ROWS_PER_CHUNK = 65_536
_BYTES_PER_VALUE = 8


class SQLSource(Source):
    """The rows of ``query`` over the database at ``url`` (see the module docstring)."""

    reads_series = True

    def __init__(self, url: str, query: str, options: SourceOptions) -> None:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:  # unparseable, or a port that is no number
            safe = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)  # no password in the message
            raise ConfigError(f"{safe}: not a SQLAlchemy URL") from exc
        super().__init__(f"{parsed.render_as_string(hide_password=True)}#{query}", options)
        self.query = query.strip()
        if not self.query:
            raise ConfigError(f"{self.name}: no query after '#'")
        try:  # refused before anything connects; the session is read-only too (_read)
            check_query(self.query)
        except ConfigError as exc:
            raise ConfigError(f"{self.name}: {exc}") from exc
        try:  # imports the dialect and its driver now; connects only when read
            self._engine: Engine = create_engine(parsed, poolclass=NullPool)
        except NoSuchModuleError as exc:
            raise ConfigError(f"{self.name}: no SQLAlchemy dialect for this URL ({exc})") from exc
        except ArgumentError as exc:  # e.g. a SQLite URL with a user or password
            raise ConfigError(f"{self.name}: unusable URL ({_why(exc)})") from exc
        except ImportError as exc:
            raise ConfigError(
                f"{self.name}: the database driver is not installed ({exc}); pip install it"
            ) from exc
        db = parsed.database
        #: The SQLite file read, which no output may overwrite.
        self.database_file: str | None = None
        if (
            parsed.get_backend_name() == "sqlite"
            and db not in (None, "", ":memory:")
            and "uri" not in parsed.query
        ):
            if not os.path.exists(db):  # SQLite would create an empty database instead
                raise ConfigError(f"{self.name}: no such SQLite database {db!r}")
            self.database_file = db

    def column_names(self) -> list[str]:
        """The names of the query's columns, from running it without fetching its rows."""
        with self._connect() as conn, self._execute(conn) as result:
            return list(result.keys())

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        checker.enter(self.name, 0, "row")
        with self._connect() as conn:
            yield from self._chunks(self._execute(conn), skip, checker)

    def _connect(self) -> Connection:
        try:
            return self._engine.connect()
        except SQLAlchemyError as exc:
            raise ConfigError(f"{self.name}: cannot connect ({_why(exc)})") from exc

    def _execute(self, conn: Connection) -> CursorResult[Any]:
        """The query, run in a read-only session with a server-side cursor."""
        try:
            for statement in read_only_statements(conn.dialect.name):
                conn.exec_driver_sql(statement)
            return conn.execution_options(
                stream_results=True, yield_per=MAX_ROWS_PER_CHUNK, no_parameters=True
            ).exec_driver_sql(self.query)
        except SQLAlchemyError as exc:
            raise ConfigError(f"{self.name}: query failed ({_why(exc)})") from exc

    def _partitions(
        self, result: CursorResult[Any], names: list[str]
    ) -> Iterator[Sequence[Sequence[Any]]]:
        """The result's rows, ``block_bytes`` at a time (at most ``MAX_ROWS_PER_CHUNK``)."""
        rows = self.options.block_bytes // (_BYTES_PER_VALUE * len(names))
        parts = result.yield_per(max(1, min(MAX_ROWS_PER_CHUNK, rows))).partitions()
        while True:
            try:
                part: Sequence[Sequence[Any]] = next(parts, [])
            except SQLAlchemyError as exc:
                raise DataError(f"fetching failed ({_why(exc)})", source=self.name) from exc
            if not part:
                return
            yield part

    def _chunks(self, result: CursorResult[Any], skip: int, checker: RowChecker) -> Iterator[Chunk]:
        with result:
            if not result.returns_rows:
                raise ConfigError(f"{self.name}: the statement returns no rows")
            names = list(result.keys())
            if self.options.series is not None:
                yield from self._series(result, names, skip, checker)
                return
            label = self._label_index(names, checker)
            features = self._features(names, label, checker)
            if not features:
                raise DataError(f"no feature columns among {names}", source=self.name)
            start = 0
            for fetched in self._partitions(result, names):
                part = fetched
                if start + len(part) <= skip:  # resume: fetched, never converted
                    start += len(part)
                    continue
                if start < skip:
                    part, start = part[skip - start :], skip
                checker.fix_width(len(features), start)
                yield _chunk(part, start, checker, names=names, label=label, features=features)
                start += len(part)

    def _series(
        self, result: CursorResult[Any], names: list[str], skip: int, checker: RowChecker
    ) -> Iterator[Chunk]:
        """Windows of long-format series rows (:mod:`streamfit.data.series_long`): rows
        before ``skip`` are fetched again into the table, so the windows after it are those
        of one uninterrupted read."""
        if self._series_table is None:
            raise ConfigError(f"{self.name}: {NOT_FOR_FORECASTS}")
        yield from read_long_sql(
            names, self._partitions(result, names), self._series_table, checker, skip
        )

    def _features(self, names: list[str], label: int | None, checker: RowChecker) -> list[int]:
        """The feature columns, by name in the order of the channel's first read (or of the
        expected schema): a query whose columns come in another order reads the same."""
        not_features = {None if label is None else names[label]}
        if checker.columns is not None:
            not_features.add(checker.columns.label)
        fields = [(n, pa.float32()) for n in names if n not in not_features]
        found = Schema.of(fields, None if label is None else names[label])
        return [names.index(n) for n in checker.match_columns(found)]

    def _label_index(self, names: list[str], checker: RowChecker) -> int | None:
        if not checker.labelled:
            return None
        wanted = self.options.label_column
        if wanted is None:
            return 0
        if wanted not in names:
            raise DataError(f"no label column {wanted!r} among {names}", source=self.name)
        return names.index(wanted)


def _chunk(
    rows: Sequence[Sequence[Any]],
    start: int,
    checker: RowChecker,
    *,
    names: list[str],
    label: int | None,
    features: list[int],
) -> Chunk:
    """The rows as a chunk; NULLs, non-numbers and non-finite values are reported in order."""
    n, k = len(rows), len(names)
    with np.errstate(over="ignore", invalid="ignore"):
        try:  # the common case: all numbers (None becomes NaN)
            m = np.fromiter(chain.from_iterable(rows), np.float32, count=n * k).reshape(n, k)
        except (TypeError, ValueError, OverflowError):
            m = np.fromiter(map(_number, chain.from_iterable(rows)), np.float32, n * k)
            m = m.reshape(n, k)
    ok = np.isfinite(m).all(axis=1)
    bad: list[int] = []
    for i in map(int, np.flatnonzero(~ok)):
        j = int(np.flatnonzero(~np.isfinite(m[i]))[0])
        checker.bad(start + i, f"column {names[j]!r}", _describe(rows[i][j]))
        bad.append(start + i)
    m = m[ok]
    return checker.dense(
        m[:, features],
        None if label is None else m[:, label],
        start + np.flatnonzero(ok).astype(np.int64),
        start + n,
        bad,
        field_name=lambda j: f"column {names[features[j]]!r}",
        label_name=f"column {names[label or 0]!r}",
    )


def _why(exc: SQLAlchemyError) -> str:
    return str(exc.orig) if isinstance(exc, DBAPIError) else str(exc).split("\n")[0]


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def _describe(value: Any) -> str:
    if value is None:
        return "NULL value"
    if isinstance(value, Number):
        return f"not a finite float32 ({value!r})"
    return f"not a number ({value!r})"
