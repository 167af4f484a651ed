"""SQLSource over real SQLite files, through ``open_source``."""

from __future__ import annotations

import sqlite3
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.pool import NullPool, Pool

from streamfit.data.chunk import Chunk, dense_arrays, labels_array
from streamfit.data.source import SourceOptions, open_source
from streamfit.data.sql import SQLSource
from streamfit.data.sqlguard import check_query
from streamfit.errors import ConfigError, DataError
from tests.jobs.conftest import postgresql_server, postgresql_url  # noqa: F401 (fixtures)

QUERY = "SELECT label, x1, x2 FROM train ORDER BY id"


def make_db(path: Path, rows: Sequence[tuple[Any, ...]]) -> str:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE train (id INTEGER PRIMARY KEY, label, x1, x2)")
    con.executemany("INSERT INTO train (label, x1, x2) VALUES (?, ?, ?)", rows)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def read_all(uri: str, **options: Any) -> list[Chunk]:
    return list(open_source(uri, SourceOptions(**options)).read(options.pop("skip", 0)))


def stack(chunks: list[Chunk]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.concatenate([dense_arrays(c.batch) for c in chunks])
    ys = [labels_array(c.batch) for c in chunks]
    y = np.concatenate([v for v in ys if v is not None]) if ys[0] is not None else np.empty(0)
    return x, y, np.concatenate([c.positions for c in chunks])


@pytest.fixture
def db(tmp_path: Path) -> str:
    rows = [(i % 2, i * 0.5, i) for i in range(10)]
    rows[3] = (True, 1.25, 7)  # a boolean label
    return make_db(tmp_path / "d.db", rows)


def test_values_labels_and_positions_are_exact(db: str) -> None:
    source = open_source(f"{db}#{QUERY}")
    assert isinstance(source, SQLSource) and source.rereadable
    chunks = list(source.read())
    x, y, pos = stack(chunks)
    expected = np.array([(i * 0.5, i) for i in range(10)], dtype=np.float32)
    expected[3] = (1.25, 7)
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1], np.float32))
    np.testing.assert_array_equal(pos, np.arange(10))
    assert chunks[-1].end == 10 and x.dtype == np.float32


def test_label_column_by_name_and_unlabelled(db: str) -> None:
    x, y, _ = stack(read_all(f"{db}#{QUERY}", label_column="x2"))
    np.testing.assert_array_equal(y, [0, 1, 2, 7, 4, 5, 6, 7, 8, 9])
    assert x.shape == (10, 2) and x[2].tolist() == [0.0, 1.0]  # label, x1
    x, _, _ = stack(read_all(f"{db}#{QUERY}", labelled=False))
    assert x.shape == (10, 3) and x[2].tolist() == [0.0, 1.0, 2.0]
    assert all(labels_array(c.batch) is None for c in read_all(f"{db}#{QUERY}", labelled=False))
    with pytest.raises(DataError, match=r"no label column 'y' among \['label', 'x1', 'x2'\]"):
        read_all(f"{db}#{QUERY}", label_column="y")


def test_several_chunks_and_skip(db: str) -> None:
    block = 3 * 8 * 4  # 3 columns: 4 rows a chunk
    chunks = read_all(f"{db}#{QUERY}", block_bytes=block)
    assert [c.n_rows for c in chunks] == [4, 4, 2]
    assert [c.end for c in chunks] == [4, 8, 10]
    source = open_source(f"{db}#{QUERY}", SourceOptions(block_bytes=block))
    resumed = list(source.read(6))
    assert [c.positions.tolist() for c in resumed] == [[6, 7], [8, 9]]
    np.testing.assert_array_equal(stack(resumed)[0], stack(chunks)[0][6:])
    assert list(source.read(10)) == []


def test_query_is_sent_as_written(db: str) -> None:
    query = "SELECT label, x1, x2 % 3 FROM train WHERE '12:30' <> '%s' ORDER BY id"
    x, _, _ = stack(read_all(f"{db}#{query}"))
    assert x[:, 1].tolist() == [0, 1, 2, 1, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize(
    ("value", "message"),
    [(float("inf"), r"not a finite float32 \(inf\)"), (1e300, r"float32 \(1e\+300\)")],
)
def test_non_finite_numbers_are_bad_rows(tmp_path: Path, value: Any, message: str) -> None:
    uri = make_db(tmp_path / "d.db", [(0, 1, 2), (1, value, 2)]) + f"#{QUERY}"
    with pytest.raises(DataError, match=message) as info:
        read_all(uri)
    assert info.value.row == 2


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [((1, None, 2), "column 'x1'", "NULL"), ((1, 2, "abc"), "column 'x2'", "'abc'")],
)
def test_null_and_strings_are_bad_rows(
    tmp_path: Path, bad: tuple[Any, ...], field: str, message: str
) -> None:
    rows: list[tuple[Any, ...]] = [(0, 1.0, 2.0)] * 5
    rows[2] = bad
    uri = f"{make_db(tmp_path / 'd.db', rows)}#{QUERY}"
    with pytest.raises(DataError, match=message) as info:
        read_all(uri)
    assert (info.value.row, info.value.field, info.value.row_label) == (3, field, "row")
    assert "d.db#SELECT" in str(info.value)
    chunks = read_all(uri, on_bad_rows="skip")
    assert stack(chunks)[2].tolist() == [0, 1, 3, 4]
    assert [c.bad.tolist() for c in chunks] == [[2]]


def test_null_label_names_the_label_column(tmp_path: Path) -> None:
    uri = f"{make_db(tmp_path / 'd.db', [(0, 1, 2), (None, 1, 2)])}#{QUERY}"
    with pytest.raises(DataError, match="NULL") as info:
        read_all(uri)
    assert (info.value.row, info.value.field) == (2, "column 'label'")


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://bob:hunter2@h/d",  # no driver here
        "sqlite://bob:hunter2@/x.db",  # SQLite takes no password
        "postgresql://bob:hunter2@h:port/d",  # not a URL
    ],
)
def test_password_is_hidden_in_names_and_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_source(f"{url}#{QUERY}")
    assert "hunter2" not in str(info.value) and "bob:***@" in str(info.value)
    assert "hunter2" not in str(info.value.__cause__ or "")


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("postgresql+nodriver://u:pw@h/d#SELECT 1", ConfigError, "no SQLAlchemy dialect"),
        ("mysql+pymysql://u:pw@h/d#SELECT 1", ConfigError, "driver is not installed"),
        ("sqlite:////no/such/dir/x.db#SELECT 1", ConfigError, "no such SQLite database"),
        ("{db}#SELECT * FROM missing", ConfigError, "query failed.*no such table: missing"),
        ("{db}#SELECT FROM WHERE", ConfigError, "query failed.*syntax error"),
        ("{db}#SELEC 1", ConfigError, "'SELEC' is not a query"),
    ],
)
def test_configuration_errors_are_clear(db: str, uri: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as info:
        read_all(uri.format(db=db))
    assert "pw@" not in str(info.value)


@pytest.fixture
def counted() -> Iterator[dict[str, int]]:
    """Counts rows SQLite has produced (a ``tick`` SQL function) and connections given back."""
    counts = {"ticks": 0, "closed": 0}

    def tick(value: float) -> float:
        counts["ticks"] += 1
        return value

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.create_function("tick", 1, tick)

    def on_close(_dbapi_connection: Any, _record: Any) -> None:
        counts["closed"] += 1

    event.listen(Pool, "connect", on_connect)
    event.listen(Pool, "close", on_close)
    yield counts
    event.remove(Pool, "connect", on_connect)
    event.remove(Pool, "close", on_close)


def test_rows_are_streamed_not_fetched_at_once(tmp_path: Path, counted: dict[str, int]) -> None:
    n = 200_000
    db = make_db(tmp_path / "big.db", [(i % 2, i, -i) for i in range(n)])
    query = "SELECT label, x1, tick(x2) FROM train ORDER BY id"
    source = open_source(f"{db}#{query}", SourceOptions(block_bytes=3 * 8 * 1000))
    tracemalloc.start()
    try:
        chunks = source.read()
        first = next(chunks)
        assert first.n_rows == 1000 and first.end == 1000
        assert counted["ticks"] <= 2000 and counted["closed"] == 0  # cursor open, mid-query
        _, peak_first = tracemalloc.get_traced_memory()
        for _ in range(50):
            assert next(chunks).n_rows == 1000
        assert counted["ticks"] <= 52_000
        _, peak_later = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_later < peak_first + (1 << 20)  # bounded by a partition, not the result
    assert sum(c.n_rows for c in chunks) == n - 51_000 and counted["ticks"] == n
    assert counted["closed"] == 1


# -- only queries, in a read-only session -------------------------------------------------------


def count_rows(db: str) -> int:
    con = sqlite3.connect(db.removeprefix("sqlite:///"))
    try:
        return int(con.execute("SELECT count(*) FROM train").fetchone()[0])
    finally:
        con.close()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("DROP TABLE train", r"'DROP' is not a query"),
        ("delete from train", r"'DELETE' is not a query"),
        ("/* a comment */ -- and another\n  UPDATE train SET x1 = 0", r"'UPDATE' is not a query"),
        ("SELECT * FROM train; DROP TABLE train", "more than one statement"),
        ("SELECT * FROM train;\n-- a comment\n;DELETE FROM train", "more than one statement"),
        ("PRAGMA writable_schema = ON", r"'PRAGMA' is not a query"),
        ("ATTACH 'x.db' AS x", r"'ATTACH' is not a query"),
        ("SELECT 'unterminated", "unterminated ' quote"),
        ("", "no query after '#'"),
    ],
)
def test_statements_that_are_not_one_query_are_refused_before_running(
    db: str, query: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        read_all(f"{db}#{query}")
    assert "SQLSource" not in str(info.value) and "sqlite:///" in str(info.value)
    assert count_rows(db) == 10  # the table is intact


@pytest.mark.parametrize(
    "query",
    [
        "-- the training rows\nSELECT label, x1, x2 FROM train ORDER BY id;",
        "WITH t AS (SELECT label, x1, x2, id FROM train) SELECT label, x1, x2 FROM t ORDER BY id",
        "SELECT label, x1, x2 FROM train WHERE 'a;b' != ';' ORDER BY id; -- done",
        'SELECT label, x1 AS "x;1", x2 FROM train ORDER BY id',
    ],
)
def test_queries_with_comments_parentheses_and_quoted_semicolons_run(db: str, query: str) -> None:
    x, _, _ = stack(read_all(f"{db}#{query}"))
    assert x.shape == (10, 2)


def test_the_query_runs_in_a_read_only_session(db: str) -> None:
    # SQLite's query_only, read back by the query itself: 1 in every row.
    chunks = read_all(f"{db}#SELECT 0 AS label, query_only FROM pragma_query_only")
    x, _, _ = stack(chunks)
    assert x.tolist() == [[1.0]]


def test_a_query_that_writes_fails_on_postgresql_and_leaves_the_table(
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue("postgresql_url")
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (label real, x real)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1, 2), (0, 3)")
        # A SELECT can still write, through a function: only a read-only session stops it.
        conn.exec_driver_sql(
            "CREATE FUNCTION wipe() RETURNS real LANGUAGE sql"
            " AS $$ DELETE FROM t; SELECT 1::real $$"
        )
    with pytest.raises(ConfigError, match="cannot execute DELETE in a read-only transaction"):
        read_all(f"{url}#SELECT wipe() AS label, 1 AS x")
    x, y, _ = stack(read_all(f"{url}#SELECT label, x FROM t ORDER BY x"))
    assert x.tolist() == [[2.0], [3.0]] and y.tolist() == [1.0, 0.0]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    engine.dispose()


def test_check_query_reads_past_comments_parentheses_and_quotes() -> None:
    check_query("/* a */ ((SELECT 1))")
    check_query("SELECT $$;$$, $tag$ ; $tag$, 'it''s;', \"a;b\", `c;d` -- ;\n;")
    check_query("VALUES (1, 2)")
    check_query("TABLE t")
    for bad in ("SELECT 1;;", "SELECT $x$ ; $x$; SELECT 2", "SELECT 1 /* ; */ ; x"):
        with pytest.raises(ConfigError, match="more than one statement"):
            check_query(bad)
    with pytest.raises(ConfigError, match="unterminated /\\* comment"):
        check_query("/* SELECT 1")
