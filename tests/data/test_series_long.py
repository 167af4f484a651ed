"""Long-format series rows (item_id, timestamp, target, ...) read into windows: the same windows
as the series written as records, from CSV, Parquet and SQL, across files, resumed, bounded
by the table, and bad rows named by file, row and field."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamfit.core.calendar import num_time_features
from streamfit.core.windows import SeriesReading, WindowLayout, WindowsMode
from streamfit.data.series_long import SeriesTable
from streamfit.errors import ConfigError, DataError
from tests.data.conftest import Read, read, write_lines

P, C, H = 2, 3, 2
LAYOUT = WindowLayout(H, C, P, time_features=num_time_features("D"), cat=1, dynamic=1)
DATES = [str(d) for d in np.arange("2024-02-20", "2024-03-20", dtype="datetime64[D]")]


def reading(mode: WindowsMode = "train", **kw: Any) -> SeriesReading:
    kw.setdefault("layout", LAYOUT)
    kw.setdefault("cardinality", (5,))
    kw.setdefault("seasonality", 3)
    return SeriesReading("D", mode=mode, **kw)


def panel(n_items: int = 6, seed: int = 0) -> list[dict[str, Any]]:
    """Series of different starts and lengths, some values missing."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_items):
        start = int(rng.integers(0, 5))
        length = int(rng.integers(4, 20))
        target = np.round(rng.gamma(2.0, 10.0, length), 2)
        target[rng.random(length) < 0.15] = np.nan
        dyn = np.round(rng.normal(size=length), 3)
        out.append(
            {"item": f"item-{i}", "start": start, "target": target, "cat": i % 5, "dyn": dyn}
        )
    return out


def as_records(series: list[dict[str, Any]]) -> list[str]:
    return [
        json.dumps(
            {
                "start": DATES[s["start"]],
                "target": [None if np.isnan(v) else float(v) for v in s["target"]],
                "cat": [s["cat"]],
                "dynamic_feat": [s["dyn"].tolist()],
            }
        )
        for s in series
    ]


def as_rows(series: list[dict[str, Any]]) -> pa.Table:
    """One row per step of each series, ordered by time (items interleaved)."""
    rows = [
        (s["start"] + t, s["item"], s["target"][t], s["cat"], s["dyn"][t])
        for s in series
        for t in range(len(s["target"]))
    ]
    rows.sort(key=lambda r: (r[0], r[1]))
    return pa.table(
        {
            "item_id": [r[1] for r in rows],
            "timestamp": [DATES[r[0]] for r in rows],
            "target": [None if np.isnan(r[2]) else float(r[2]) for r in rows],
            "cat_0": [r[3] for r in rows],
            "dynamic_feat_0": [float(r[4]) for r in rows],
        }
    )


def write_csv(path: Path, table: pa.Table) -> Path:
    pacsv.write_csv(table, path)
    return path


def sorted_rows(x: np.ndarray, drop_extra: bool = False) -> np.ndarray:
    if drop_extra:
        x = x[:, :-1]
    return x[np.lexsort(x.T[::-1])]


def read_long(path: Path | str, mode: WindowsMode = "train", skip: int = 0, **kw: Any) -> Read:
    options = {k: kw.pop(k) for k in ("on_bad_rows", "block_bytes") if k in kw}
    return read(path, skip=skip, series=reading(mode, **kw), **options)


# -- the same windows as records -----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_training_windows_are_those_of_the_records(tmp_path: Path, fmt: str) -> None:
    series = panel()
    records = read_long(write_lines(tmp_path / "r.jsonl", as_records(series)))
    table = as_rows(series)
    path = tmp_path / f"rows.{fmt}"
    write_csv(path, table) if fmt == "csv" else pq.write_table(table, path)
    rows = read_long(path, block_bytes=200)  # many blocks: items continue across them
    assert len(rows.x) == len(records.x) > 0
    # The same windows; only the scale differs (the records' whole series, the rows' so far).
    np.testing.assert_array_equal(sorted_rows(rows.x, True), sorted_rows(records.x, True))
    # A window comes out at the row that completes it, in row order.
    assert np.all(np.diff(rows.positions) > 0) and rows.end == table.num_rows
    windows = LAYOUT.unpack(__import__("torch").tensor(rows.x))
    assert (windows.extra > 0).all()


def test_test_windows_and_their_seasonal_error_are_those_of_the_records(tmp_path: Path) -> None:
    series = panel(seed=1)
    records = read_long(write_lines(tmp_path / "r.jsonl", as_records(series)), "test")
    rows = read_long(write_csv(tmp_path / "rows.csv", as_rows(series)), "test", block_bytes=300)
    assert len(rows.x) == len(series)
    np.testing.assert_allclose(sorted_rows(rows.x), sorted_rows(records.x), rtol=1e-6)


def test_a_missing_step_is_a_missing_value(tmp_path: Path) -> None:
    text = ["item_id,timestamp,target,cat_0,dynamic_feat_0"]
    text += [f"a,{DATES[t]},{t},1,0.5" for t in (0, 1, 2, 5, 6)]
    got = read_long(write_lines(tmp_path / "r.csv", text))
    windows = LAYOUT.unpack(__import__("torch").tensor(got.x))
    # Rows 2, 3 and 4 complete a window each; the one ending at step 6 (row 4) holds steps
    # 0 .. 6, steps 3 and 4 unobserved.
    assert got.positions.tolist() == [0, 1, 2]
    assert windows.target[-1].tolist() == [0, 1, 2, 0, 0, 5, 6]
    assert windows.observed[-1].tolist() == [1, 1, 1, 0, 0, 1, 1]


# -- positions: files, resume, SQL -----------------------------------------------------------


def test_items_continue_across_files_and_a_resume_gives_the_rest(tmp_path: Path) -> None:
    table = as_rows(panel(seed=2))
    whole = read_long(write_csv(tmp_path / "all.csv", table))
    folder = tmp_path / "parts"
    folder.mkdir()
    cut = table.num_rows // 3
    write_csv(folder / "part-1.csv", table.slice(0, cut))
    write_csv(folder / "part-2.csv", table.slice(cut))
    parts = read_long(folder, block_bytes=250)
    # The same windows (a piece of rows gives its windows item by item: another order)
    np.testing.assert_array_equal(sorted_rows(parts.x), sorted_rows(whole.x))
    for skip in (cut - 3, cut, cut + 5, int(parts.positions[len(parts.positions) // 2])):
        rest = read_long(folder, skip=skip, block_bytes=250)
        keep = parts.positions >= skip
        assert rest.positions.tolist() == parts.positions[keep].tolist()
        np.testing.assert_array_equal(rest.x, parts.x[keep])


def test_sql_rows_ordered_by_time(tmp_path: Path) -> None:
    table = as_rows(panel(seed=3))
    db = tmp_path / "d.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE obs (store TEXT, day TEXT, sales REAL, kind INT, price REAL)")
        con.executemany(
            "INSERT INTO obs VALUES (?, ?, ?, ?, ?)", zip(*table.to_pydict().values(), strict=True)
        )
    query = (
        "SELECT store AS item_id, day AS timestamp, sales AS target, kind AS cat_0, "
        "price AS dynamic_feat_0 FROM obs ORDER BY day, store"
    )
    got = read_long(f"sqlite:///{db}#{query}")
    expected = read_long(write_csv(tmp_path / "rows.csv", table))
    np.testing.assert_array_equal(sorted_rows(got.x), sorted_rows(expected.x))
    rest = read_long(f"sqlite:///{db}#{query}", skip=20)
    np.testing.assert_array_equal(rest.x, got.x[got.positions >= 20])
    test = read_long(f"sqlite:///{db}#{query}", "test")
    assert len(test.x) == 6


def test_parquet_timestamps_and_integer_items(tmp_path: Path) -> None:
    days = np.arange("2024-01-01", "2024-01-09", dtype="datetime64[D]")
    table = pa.table(
        {
            "item_id": pa.array([7] * 8),
            "timestamp": pa.array(days.astype("datetime64[s]")),
            "target": pa.array(np.arange(8.0)),
        }
    )
    pq.write_table(table, tmp_path / "r.parquet")
    layout = WindowLayout(H, C, P, time_features=num_time_features("D"))
    got = read(tmp_path / "r.parquet", series=SeriesReading("D", layout))
    assert got.positions.tolist() == [0, 1, 2, 3, 4, 5]  # rows 2 .. 7 complete a window


# -- the bounded table -----------------------------------------------------------------------


def test_the_table_is_bounded_and_evicts_the_least_recently_updated(tmp_path: Path) -> None:
    text = ["item_id,timestamp,target,cat_0,dynamic_feat_0"]
    for t in range(8):
        text += [f"i{j},{DATES[t]},{t + j},1,0" for j in range(50)]
    path = write_lines(tmp_path / "r.csv", text)
    full = read_long(path)
    assert len(full.x) == 50 * 6
    per_item = SeriesTable(reading()).keep * 16 + 8 * 11 + 200
    small = read_long(path, table_bytes=per_item * 20)  # 20 items of the 50: each evicted
    assert len(small.x) == 0
    with pytest.raises(ConfigError, match="raise series_table_mb"):
        read_long(path, "test", table_bytes=per_item * 20)


# -- bad rows --------------------------------------------------------------------------------

HEADER = "item_id,timestamp,target,cat_0,dynamic_feat_0"


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        (",2024-02-23,1,1,0", "item_id", "missing"),
        ("a,2024-02-31,1,1,0", "timestamp", "no date"),
        ("a,yesterday,1,1,0", "timestamp", "is not 'YYYY-MM-DD"),
        ("a,2024-02-21,1,1,0", "timestamp", "not after the item's previous row"),
        ("a,2024-02-22,1,1,0", "timestamp", "not after the item's previous row"),
        ("a,2024-02-23,abc,1,0", "target", "'abc' is not a number"),
        ("a,2024-02-23,1e39,1,0", "target", "beyond float32"),
        ("a,2024-02-23,1,5,0", "cat_0", "5 is beyond its cardinality 5"),
        ("a,2024-02-23,1,1.5,0", "cat_0", "not an integer"),
        ("a,2024-02-23,1,1,", "dynamic_feat_0", "missing"),
        ("a,2024-02-23,1,1", None, "4 fields where the header has 5"),
    ],
)
def test_a_bad_row_is_named_or_skipped(
    tmp_path: Path, row: str, field: str | None, message: str
) -> None:
    good = [f"a,{DATES[t]},{t},1,0" for t in range(3)]
    later = [f"a,{DATES[t]},{t},1,0" for t in range(4, 7)]
    path = write_lines(tmp_path / "r.csv", [HEADER, *good, row, *later])
    with pytest.raises(DataError, match=message) as info:
        read_long(path)
    assert info.value.row == 4 and info.value.field == field
    assert str(path) in str(info.value)
    got = read_long(path, on_bad_rows="skip")
    # The good rows all count: windows end at row 3 (step 2) and at the three later rows.
    assert len(got.positions) == 4 and got.end == 7
    assert len([b for c in got.chunks for b in c.bad]) == 1


def test_a_test_item_too_short_and_forecasts_refused(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.csv", [HEADER, f"a,{DATES[0]},1,1,0", f"a,{DATES[1]},1,1,0"])
    with pytest.raises(DataError, match="item 'a' has 2 steps; a test needs at least"):
        read_long(path, "test")
    with pytest.raises(ConfigError, match="forecasts are made from whole series"):
        read_long(path, "forecast")


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.csv", ["item_id,timestamp,target", "a,2024-01-01,1"])
    with pytest.raises(DataError, match="no cat_0, dynamic_feat_0 among item_id, timestamp"):
        read_long(path)


def test_rows_from_a_pipe(tmp_path: Path) -> None:
    import io

    from streamfit.data.base import SourceOptions
    from streamfit.data.source import PipeSource

    path = write_csv(tmp_path / "rows.csv", as_rows(panel(seed=4)))
    whole = read_long(path)
    pipe = PipeSource("-", io.BytesIO(path.read_bytes()), SourceOptions(series=reading()))
    got = Read(list(pipe.read()))
    np.testing.assert_array_equal(got.x, whole.x)
    test = PipeSource("-", io.BytesIO(path.read_bytes()), SourceOptions(series=reading("test")))
    assert len(Read(list(test.read())).x) == 6


def test_a_block_whose_items_span_unequally_is_folded_in_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One item with many steps in a block and many with one: the block's matrix would be
    items x the longest span, so it is folded in parts, with the same windows."""
    text = [HEADER]
    for t in range(25):
        text.append(f"long,{DATES[t]},{t},1,{t / 10}")
        if t % 5 == 4:
            text += [f"short-{t}-{j},{DATES[t]},{j},2,0" for j in range(30)]
    path = write_lines(tmp_path / "r.csv", text)
    whole = read_long(path)
    from streamfit.data import series_long

    split = []
    parts_of = series_long._parts

    def parts_counted(spans: np.ndarray, keep: int) -> list[np.ndarray]:
        out = parts_of(spans, keep)
        split.append(len(out) > 1)
        return out

    monkeypatch.setattr(series_long, "_parts", parts_counted)
    monkeypatch.setattr(series_long, "_BLOCK_POSITIONS", 60)
    parts = read_long(path)
    assert any(split)
    np.testing.assert_array_equal(sorted_rows(parts.x), sorted_rows(whole.x))
    assert parts.positions.tolist() == whole.positions.tolist()


# -- fuzz ------------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=int(os.environ.get("STREAMFIT_FUZZ_EXAMPLES", "40")),
    deadline=10_000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def _panels(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int, int, int]:
    """Random series (starts, lengths, missing values, steps with no row), a block size,
    a table size in items and a stride."""
    n = draw(st.integers(1, 6))
    series = []
    for i in range(n):
        # What a record must be to be read: prediction_length + 1 steps, at most half of
        # them missing (a None value, or a step with no row).
        length = draw(st.integers(P + 1, 14))
        values: list[float | None] = draw(
            st.lists(st.floats(-1e4, 1e4), min_size=length, max_size=length)
        )
        rows = [True] * length
        for t in draw(st.lists(st.integers(0, length - 1), max_size=length // 2, unique=True)):
            if draw(st.booleans()) and 0 < t < length - 1:
                rows[t] = False  # no row: the first and last steps bound the item's span
            else:
                values[t] = None
        series.append(
            {
                "item": f"i{i}",
                "start": draw(st.integers(0, 6)),
                "values": values,
                "rows": rows,
                "cat": i % 5,
                "dyn": [float(t) for t in range(length)],
            }
        )
    return (
        series,
        draw(st.sampled_from([120, 700, 1 << 20])),
        draw(st.integers(1, 8)),
        draw(st.integers(1, 3)),
    )


@FUZZ
@given(_panels())
def test_fuzz_rows_give_the_records_windows(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[list[dict[str, Any]], int, int, int]
) -> None:
    """Any panel as rows ordered by time: with a table that holds every item, the training
    windows are the records' (a step without a row is a missing value, as in a record, but
    ends no window); resumed anywhere, the rest of the read; with a smaller table, never
    more windows."""
    series, block, table_items, stride = case
    folder = tmp_path_factory.mktemp("fuzz")
    records = []
    rows = []
    for s in series:
        target = [v if has else None for v, has in zip(s["values"], s["rows"], strict=True)]
        records.append(
            json.dumps(
                {
                    "start": DATES[s["start"]],
                    "target": target,
                    "cat": [s["cat"]],
                    "dynamic_feat": [s["dyn"]],
                }
            )
        )
        rows += [
            (s["start"] + t, s["item"], "" if v is None else repr(v), s["cat"], s["dyn"][t])
            for t, (v, has) in enumerate(zip(s["values"], s["rows"], strict=True))
            if has
        ]
    rows.sort(key=lambda r: (r[0], r[1]))
    text = [HEADER] + [f"{r[1]},{DATES[r[0]]},{r[2]},{r[3]},{r[4]}" for r in rows]
    # A step with no row inside an item's span: the record has a missing value there, and
    # the rows' covariate there is 0 (no row gave one); compare with a record of 0 too.
    for s, line in zip(series, range(len(records)), strict=True):
        dyn = [d if has else 0.0 for d, has in zip(s["dyn"], s["rows"], strict=True)]
        obj = json.loads(records[line])
        obj["dynamic_feat"] = [dyn]
        records[line] = json.dumps(obj)
    path = write_lines(folder / "r.csv", text)
    expected = read_long(
        write_lines(folder / "r.jsonl", records), on_bad_rows="skip", stride=stride
    )
    got = read_long(path, block_bytes=block, stride=stride)
    every_step = all(all(s["rows"]) for s in series)
    if stride > 1:  # rows count strides from an item's first step, records back from its last
        assert len(got.x) == len(expected.x) or not every_step
    elif every_step:
        np.testing.assert_array_equal(sorted_rows(got.x, True), sorted_rows(expected.x, True))
    else:  # a step without a row completes no window; a record's missing value ends one
        known = {row.tobytes() for row in expected.x[:, :-1]}
        assert all(row.tobytes() in known for row in got.x[:, :-1])
    if len(got.positions):
        skip = int(got.positions[len(got.positions) // 2])
        rest = read_long(path, skip=skip, block_bytes=block, stride=stride)
        np.testing.assert_array_equal(rest.x, got.x[got.positions >= skip])
    per_item = SeriesTable(reading()).keep * 8 + 8 * 11 + 200
    small = read_long(path, block_bytes=block, stride=stride, table_bytes=per_item * table_items)
    assert len(small.x) <= len(got.x)
