"""Named columns are matched by name: files of a channel in other column orders read the same,
a column missing, extra or of another kind is an error naming the file and the column, and
string columns are features only when hashed. Parquet, CSV with a header and SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfit.data.chunk import dense_arrays, sparse_arrays
from streamfit.data.schema import NUMBER, STRING, Column, Schema
from streamfit.data.source import Source, SourceOptions, open_source
from streamfit.errors import DataError, StateError
from tests.data.conftest import read

ROWS = {
    "label": [1.0, 0.0, 1.0],
    "a": [1.0, 2.0, 3.0],
    "b": [10.0, 20.0, 30.0],
    "c": [-1.0, -2.0, -3.0],
}


def parquet(path: Path, order: str, rows: dict[str, list[object]] | None = None) -> Path:
    """The columns of ``rows`` (``ROWS``) named by the letters of ``order``, in that order."""
    rows = rows or ROWS
    names = {"l": "label", "a": "a", "b": "b", "c": "c", "s": "s", "t": "t"}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({names[k]: rows[names[k]] for k in order}), path)
    return path


def csv(path: Path, order: str) -> Path:
    names = [{"l": "label", "a": "a", "b": "b", "c": "c"}[k] for k in order]
    lines = [",".join(names)]
    lines += [",".join(str(ROWS[n][i]) for n in names) for i in range(3)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# -- Parquet -----------------------------------------------------------------------------------


def test_a_folder_in_other_column_orders_reads_as_one_ordered_file(tmp_path: Path) -> None:
    ordered = read(parquet(tmp_path / "one" / "a.parquet", "labc"))
    parquet(tmp_path / "two" / "1.parquet", "labc")
    parquet(tmp_path / "two" / "2.parquet", "cbla")
    mixed = read(tmp_path / "two")
    np.testing.assert_array_equal(mixed.x, np.concatenate([ordered.x, ordered.x]))
    np.testing.assert_array_equal(mixed.labels, np.concatenate([ordered.labels] * 2))
    np.testing.assert_array_equal(ordered.x[:, 0], ROWS["a"])  # features in file order


def test_the_source_reports_the_first_files_names_and_types(tmp_path: Path) -> None:
    rows = {**ROWS, "a": pa.array([1, 2, 3], pa.int32())}
    source = open_source(str(parquet(tmp_path / "d.parquet", "lcab", rows)))
    assert source.schema is None  # known once read
    list(source.read())
    assert source.schema == Schema(
        (
            Column("c", "double", NUMBER),
            Column("a", "int32", NUMBER),
            Column("b", "double", NUMBER),
        ),
        "label",
    )


def test_an_expected_schema_orders_the_columns_of_every_file(tmp_path: Path) -> None:
    expected = Schema.of([("b", pa.float64()), ("a", pa.float64()), ("c", pa.float64())])
    got = read(parquet(tmp_path / "d.parquet", "labc"), columns=expected)
    np.testing.assert_array_equal(got.x, np.array([ROWS["b"], ROWS["a"], ROWS["c"]]).T)


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ("lab", r"2\.parquet: missing column 'c' \(expected 'a', 'b', 'c' in any order\)"),
        ("labcs", r"2\.parquet: extra column 's' \(expected 'a', 'b', 'c' in any order\)"),
        ("lbs", r"2\.parquet: missing columns 'a', 'c' \(expected"),
    ],
)
def test_a_later_file_with_other_columns_is_an_error_naming_it(
    tmp_path: Path, order: str, message: str
) -> None:
    parquet(tmp_path / "d" / "1.parquet", "labc")
    parquet(tmp_path / "d" / "2.parquet", order, {**ROWS, "s": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match=message):
        read(tmp_path / "d")


def test_a_later_file_with_a_column_of_another_kind_is_an_error(tmp_path: Path) -> None:
    parquet(tmp_path / "d" / "1.parquet", "labc")
    parquet(tmp_path / "d" / "2.parquet", "labc", {**ROWS, "b": ["x", "y", "z"]})
    with pytest.raises(
        DataError, match=r"2\.parquet: column 'b' is string where the data before had double"
    ):
        read(tmp_path / "d")


def test_string_columns_are_an_error_naming_them_unless_hashed(tmp_path: Path) -> None:
    path = parquet(tmp_path / "d.parquet", "lasb", {**ROWS, "s": ["x", "y", "x"]})
    with pytest.raises(
        DataError, match=r"d\.parquet: column 's' is string, not a number: drop it, or hash it"
    ):
        read(path)
    hashed = read(path, hash_features=1 << 10)
    indptr, indices, _ = hashed.csr
    assert np.diff(indptr).tolist() == [3, 3, 3]  # a, s=..., b: a feature each
    assert indices[1] == indices[7] != indices[4]  # s=x twice, s=y once


def test_other_non_numeric_columns_are_an_error_even_when_hashing(tmp_path: Path) -> None:
    rows = {**ROWS, "t": pa.array([1, 2, 3], pa.timestamp("s"))}
    path = parquet(tmp_path / "d.parquet", "lat", rows)
    for options in ({}, {"hash_features": 64}):
        with pytest.raises(
            DataError, match=r"column 't' is timestamp\[ms\], not a number: drop it$"
        ):
            read(path, **options)


def test_a_string_label_column_is_a_data_error_naming_it(tmp_path: Path) -> None:
    path = parquet(tmp_path / "d.parquet", "lab", {**ROWS, "label": ["1", "0", "1"]})
    with pytest.raises(DataError, match=r"d\.parquet: label column 'label' is string, not numbers"):
        read(path)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("features", [["x"], ["y"]], r"column 'features' is list<.*: string>, not lists of"),
        ("features", [1.0, 2.0], r"column 'features' is double, not lists of numbers"),
        ("indices", [["1"], ["2"]], r"column 'indices' is list<.*: string>, not lists of"),
    ],
)
def test_list_columns_of_other_types_are_data_errors(
    tmp_path: Path, column: str, values: list[object], message: str
) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"label": [1.0, 0.0], column: values}), path)
    with pytest.raises(DataError, match=message):
        read(path, max_index=10)


def test_two_columns_of_one_name_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    table = pa.Table.from_arrays(
        [pa.array([1.0]), pa.array([2.0]), pa.array([3.0])], ["label", "a", "a"]
    )
    pq.write_table(table, path)
    with pytest.raises(DataError, match=r"d\.parquet: two columns are named 'a'"):
        read(path)


def test_unlabelled_reads_leave_out_the_label_the_channel_named(tmp_path: Path) -> None:
    path = parquet(tmp_path / "d.parquet", "cbal", {**ROWS})
    expected = Schema.of([(n, pa.float64()) for n in "abc"], label="label")
    got = read(path, labelled=False, columns=expected)
    np.testing.assert_array_equal(got.x, np.array([ROWS["a"], ROWS["b"], ROWS["c"]]).T)


# -- CSV with a header -------------------------------------------------------------------------


def test_csv_headers_in_other_orders_read_as_one_ordered_file(tmp_path: Path) -> None:
    ordered = read(csv(tmp_path / "one.csv", "labc"), label_column="label")
    csv(tmp_path / "two" / "1.csv", "labc")
    csv(tmp_path / "two" / "2.csv", "bcla")
    mixed = read(tmp_path / "two", label_column="label")
    np.testing.assert_array_equal(mixed.x, np.concatenate([ordered.x, ordered.x]))
    np.testing.assert_array_equal(mixed.labels, np.concatenate([ordered.labels] * 2))


def test_csv_header_missing_a_column_is_an_error_naming_the_file(tmp_path: Path) -> None:
    csv(tmp_path / "d" / "1.csv", "labc")
    csv(tmp_path / "d" / "2.csv", "lac")
    with pytest.raises(DataError, match=r"2\.csv: missing column 'b'"):
        read(tmp_path / "d", label_column="label")


def test_csv_bad_value_names_its_column_after_reordering(tmp_path: Path) -> None:
    csv(tmp_path / "d" / "1.csv", "labc")
    path = csv(tmp_path / "d" / "2.csv", "cbla")
    path.write_text(path.read_text().replace("20.0", "x"))
    with pytest.raises(DataError, match=r"2\.csv, line 3, column 'b': could not parse 'x'"):
        read(tmp_path / "d", label_column="label")


# -- SQL ---------------------------------------------------------------------------------------


def test_sql_columns_are_matched_by_name_on_every_read(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (label, a, b)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(1, 2, 3), (0, 4, 5)])
    con.commit()
    source = open_source(f"sqlite:///{db}#SELECT * FROM t", SourceOptions(label_column="label"))
    first = read_x(source)
    con.execute("ALTER TABLE t RENAME TO old")  # the same rows, columns in another order
    con.execute("CREATE TABLE t AS SELECT b, label, a FROM old")
    con.commit()
    np.testing.assert_array_equal(read_x(source), first)
    np.testing.assert_array_equal(first, [[2, 3], [4, 5]])
    con.execute("ALTER TABLE t ADD COLUMN z")
    con.commit()
    with pytest.raises(DataError, match=r"SELECT \* FROM t: extra column 'z'"):
        read_x(source)
    con.close()


def read_x(source: Source) -> np.ndarray:
    return np.concatenate([dense_arrays(c.batch) for c in source.read()])


# -- Schema ------------------------------------------------------------------------------------


def test_schema_json_round_trip_and_a_bad_document_is_a_state_error() -> None:
    schema = Schema.of([("a", pa.int64()), ("s", pa.dictionary(pa.int32(), pa.string()))], "y")
    assert [c.kind for c in schema.columns] == [NUMBER, STRING]
    assert Schema.from_json(schema.to_json()) == schema
    with pytest.raises(StateError, match="unreadable input schema"):
        Schema.from_json({"columns": [{"name": "a"}]})


def test_many_missing_columns_are_named_up_to_ten() -> None:
    schema = Schema.of([(f"x{i}", pa.float64()) for i in range(30)])
    with pytest.raises(DataError, match=r"missing columns 'x0', .* 'x9' and 20 more \(expected"):
        schema.order(Schema.of([]), "f.parquet")


def test_hashed_rows_of_files_in_other_orders_are_the_same(tmp_path: Path) -> None:
    rows = {**ROWS, "s": ["x", "y", "x"]}
    parquet(tmp_path / "d" / "1.parquet", "lasb", rows)
    parquet(tmp_path / "d" / "2.parquet", "lbsa", rows)
    got = read(tmp_path / "d", hash_features=1 << 10)
    first, second = (sparse_arrays(c.batch) for c in got.chunks)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
