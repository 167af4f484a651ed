"""Parquet: the canonical list layouts and plain numeric columns, a row group at a time, with
bad rows named by row and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfit.data.parquet import _list_parts, _numbers
from streamfit.errors import DataError
from tests.data.conftest import (
    assert_same_rows,
    dense_batch,
    expect_data_error,
    read,
    sparse_batch,
    unlabelled,
    write,
)


def write_table(path: Path, columns: dict[str, pa.Array | list[object]], **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, **kw)
    return path


def floats(values: list[float | None]) -> pa.Array:
    return pa.array(values, pa.float32())


def lists(rows: list[list[float] | None]) -> pa.Array:
    return pa.array(rows, pa.list_(pa.float32()))


def test_dense_round_trip_is_exact(tmp_path: Path) -> None:
    batch = dense_batch(300, 6)
    got = read(write(tmp_path / "d.parquet", batch))
    assert_same_rows(got, batch)
    np.testing.assert_array_equal(got.positions, np.arange(300))
    assert got.end == 300


def test_sparse_round_trip_is_exact(tmp_path: Path) -> None:
    batch = sparse_batch(300)
    got = read(write(tmp_path / "d.parquet", batch))
    assert got.sparse
    assert_same_rows(got, batch)


def test_unlabelled_round_trip(tmp_path: Path) -> None:
    batch = unlabelled(dense_batch(30))
    got = read(write(tmp_path / "d.parquet", batch), labelled=False)
    assert got.labels is None
    assert_same_rows(got, batch)


def test_one_chunk_per_row_group(tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", dense_batch(10), row_group_size=4)
    got = read(path)
    assert [c.n_rows for c in got.chunks] == [4, 4, 2]
    assert [c.end for c in got.chunks] == [4, 8, 10]


def test_plain_numeric_columns(tmp_path: Path) -> None:
    path = write_table(
        tmp_path / "d.parquet",
        {
            "a": pa.array([1, 2], pa.int64()),
            "label": floats([0, 1]),
            "b": pa.array([0.5, -1.5], pa.float64()),
            "c": [True, False],
        },
    )
    got = read(path)
    assert got.labels.tolist() == [0, 1]
    np.testing.assert_array_equal(got.x, [[1, 0.5, 1], [2, -1.5, 0]])


def test_plain_columns_with_a_named_label_column(tmp_path: Path) -> None:
    path = write_table(
        tmp_path / "d.parquet", {"a": floats([1, 2]), "y": floats([5, 6]), "b": floats([3, 4])}
    )
    got = read(path, label_column="y")
    assert got.labels.tolist() == [5, 6]
    np.testing.assert_array_equal(got.x, [[1, 3], [2, 4]])


def test_plain_columns_unlabelled_take_every_numeric_column(tmp_path: Path) -> None:
    path = write_table(tmp_path / "d.parquet", {"a": floats([1]), "b": floats([2])})
    got = read(path, labelled=False)
    assert got.labels is None and got.x.tolist() == [[1, 2]]


def test_missing_label_column_is_a_data_error(tmp_path: Path) -> None:
    path = write_table(tmp_path / "d.parquet", {"a": floats([1]), "b": floats([2])})
    with pytest.raises(DataError, match=r"d\.parquet: no label column 'label' among \['a', 'b'\]"):
        read(path)
    with pytest.raises(DataError, match=r"no label column 'y'"):
        read(path, label_column="y")


def test_no_feature_column_is_a_data_error(tmp_path: Path) -> None:
    path = write_table(tmp_path / "d.parquet", {"label": floats([1])})
    with pytest.raises(DataError, match=r"d\.parquet: no feature columns among \['label'\]"):
        read(path)


def test_not_a_parquet_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1 but no more")
    with pytest.raises(DataError, match=r"d\.parquet: not a readable Parquet file"):
        read(path)


# Bad rows, as row 3 of 4 (in row groups of 2, so the bad row opens the second group):
# (columns, field, message).
PLAIN = {"label": floats([1, 0, 1, 0]), "a": floats([1, 2, 3, 4])}
BAD_ROWS = {
    "null feature": (
        {**PLAIN, "b": floats([1, 2, None, 4])},
        "column 'b'",
        "non-finite value (nan)",
    ),
    "NaN feature": (
        {**PLAIN, "b": floats([1, 2, float("nan"), 4])},
        "column 'b'",
        "non-finite value (nan)",
    ),
    "inf feature": (
        {**PLAIN, "b": floats([1, 2, float("inf"), 4])},
        "column 'b'",
        "non-finite value (inf)",
    ),
    "null label": (
        {"label": floats([1, 0, None, 0]), "a": floats([1, 2, 3, 4])},
        "label",
        "missing or non-numeric label (nan)",
    ),
    "NaN label": (
        {"label": floats([1, 0, float("nan"), 0]), "a": floats([1, 2, 3, 4])},
        "label",
        "missing or non-numeric label (nan)",
    ),
    "short features list": (
        {"label": floats([1, 0, 1, 0]), "features": lists([[1, 2], [3, 4], [5], [7, 8]])},
        "features",
        "1 features where the data has 2",
    ),
    "long features list": (
        {"label": floats([1, 0, 1, 0]), "features": lists([[1, 2], [3, 4], [5, 6, 7], [7, 8]])},
        "features",
        "3 features where the data has 2",
    ),
    "null features list": (
        {"label": floats([1, 0, 1, 0]), "features": lists([[1, 2], [3, 4], None, [7, 8]])},
        "features",
        "0 features where the data has 2",
    ),
    "null in features list": (
        {"label": floats([1, 0, 1, 0]), "features": lists([[1, 2], [3, 4], [5, None], [7, 8]])},
        "features[1]",
        "non-finite value (nan)",
    ),
    "sparse index out of range": (
        {
            "label": floats([1, 0, 1, 0]),
            "indices": pa.array([[1], [2], [3, 50], [4]], pa.list_(pa.int64())),
            "values": lists([[1], [1], [1, 1], [1]]),
        },
        "feature index 50",
        "index out of range [0, 50)",
    ),
    "null sparse index": (
        {
            "label": floats([1, 0, 1, 0]),
            "indices": pa.array([[1], [2], [None], [4]], pa.list_(pa.int64())),
            "values": lists([[1], [1], [1], [1]]),
        },
        "feature index -1",
        "index out of range",
    ),
}


@pytest.mark.parametrize("row_group_size", [2, 4])
@pytest.mark.parametrize("kind", BAD_ROWS)
def test_bad_row_is_a_data_error_naming_row_and_column(
    tmp_path: Path, kind: str, row_group_size: int
) -> None:
    columns, field, message = BAD_ROWS[kind]
    path = write_table(tmp_path / "train.parquet", columns, row_group_size=row_group_size)
    expect_data_error(path, row=3, field=field, message=message, row_label="row", max_index=50)


@pytest.mark.parametrize("row_group_size", [2, 4])
@pytest.mark.parametrize("kind", BAD_ROWS)
def test_skip_mode_drops_the_bad_row_and_lists_it(
    tmp_path: Path, kind: str, row_group_size: int
) -> None:
    columns, _, _ = BAD_ROWS[kind]
    path = write_table(tmp_path / "train.parquet", columns, row_group_size=row_group_size)
    got = read(path, on_bad_rows="skip", max_index=50)
    assert got.positions.tolist() == [0, 1, 3] and got.bad.tolist() == [2]
    assert got.labels.tolist() == [1, 0, 0] and got.end == 4


def test_named_label_is_the_field_of_a_label_error(tmp_path: Path) -> None:
    path = write_table(tmp_path / "d.parquet", {"a": floats([1, 2]), "y": floats([1, None])})
    expect_data_error(path, label_column="y", row=2, field="y", message="missing", row_label="row")


def test_sparse_indices_and_values_of_different_lengths(tmp_path: Path) -> None:
    path = write_table(
        tmp_path / "d.parquet",
        {
            "label": floats([1, 0]),
            "indices": pa.array([[1], [2, 3]], pa.list_(pa.int64())),
            "values": lists([[1], [1]]),
        },
    )
    expect_data_error(
        path, row=2, field="values", message="indices and values differ", row_label="row"
    )


def test_sparse_without_values_are_ones(tmp_path: Path) -> None:
    path = write_table(
        tmp_path / "d.parquet",
        {"label": floats([1]), "indices": pa.array([[2**40, 3]], pa.list_(pa.int64()))},
    )
    got = read(path)
    assert got.csr[1].tolist() == [2**40, 3] and got.csr[2].tolist() == [1, 1]


def test_width_mismatch_in_a_later_file(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.parquet", dense_batch(5, 3))
    write(tmp_path / "d" / "b.parquet", dense_batch(4, 2))
    expect_data_error(
        tmp_path / "d",
        file="b.parquet",
        row=1,
        field="features",
        message="2 features where the data has 3",
        row_label="row",
    )
    got = read(tmp_path / "d", on_bad_rows="skip")
    assert got.positions.tolist() == [0, 1, 2, 3, 4] and got.bad.tolist() == [5, 6, 7, 8]


def test_plain_columns_of_another_set_in_a_later_file(tmp_path: Path) -> None:
    write_table(tmp_path / "d" / "a.parquet", {"label": floats([1]), "x": floats([1])})
    write_table(
        tmp_path / "d" / "b.parquet",
        {"label": floats([1]), "x": floats([1]), "z": floats([2])},
    )
    with pytest.raises(DataError, match=r"b\.parquet: extra column 'z' \(expected 'x'"):
        read(tmp_path / "d")


def test_width_mismatch_in_a_later_row_group(tmp_path: Path) -> None:
    rows = [[float(i), 1.0] for i in range(9)]
    rows[6] = [1.0]
    path = write_table(
        tmp_path / "d.parquet",
        {"label": floats([0.0] * 9), "features": lists(rows)},
        row_group_size=3,
    )
    expect_data_error(path, row=7, field="features", message="1 features", row_label="row")
    assert read(path, on_bad_rows="skip").bad.tolist() == [6]


@pytest.mark.parametrize("k", [0, 2, 3, 4, 7, 9, 10, 12])
def test_skip_reads_only_the_row_groups_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    path = write(tmp_path / "d.parquet", dense_batch(10), row_group_size=3)
    full = read(path)
    groups_read: list[int] = []
    iter_batches = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *args: object, **kwargs: object) -> object:
        groups_read.extend(kwargs["row_groups"])  # type: ignore[call-overload]
        return iter_batches(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    resumed = read(path, skip=k)
    group_ends = [3, 6, 9, 10]
    assert groups_read == [g for g, end in enumerate(group_ends) if end > k]
    keep = full.positions >= k
    assert [int(p) for c in resumed.chunks for p in c.positions] == full.positions[keep].tolist()
    if keep.any():
        np.testing.assert_array_equal(resumed.x, full.x[keep])


def test_list_parts_of_a_slice_start_at_its_first_row() -> None:
    # A slice of a list array keeps the parent's offsets (here from 3): rows and values
    # are the slice's own, taken from the parent's buffers.
    parent = pa.array([[1, 2, 3], [4], [5, 6], None, [], [7]], pa.list_(pa.int64()))
    offsets, flat = _list_parts(pa.chunked_array([parent.slice(1, 4)]))
    assert offsets.tolist() == [0, 1, 3, 3, 3] and offsets.dtype == np.int64
    assert flat.to_pylist() == [4, 5, 6]  # the null list is an empty row


def test_list_parts_of_many_chunks_and_fixed_size_lists() -> None:
    chunked = pa.chunked_array(
        [pa.array([[1], [2, 3]], pa.list_(pa.int64())), pa.array([[4, 5, 6]], pa.list_(pa.int64()))]
    )
    offsets, flat = _list_parts(chunked)
    assert offsets.tolist() == [0, 1, 3, 6] and flat.to_pylist() == [1, 2, 3, 4, 5, 6]
    fixed = pa.array([[1, 2], [3, 4], [5, 6]], pa.list_(pa.int64(), 2)).slice(1)
    offsets, flat = _list_parts(pa.chunked_array([fixed]))
    assert offsets.tolist() == [0, 2, 4] and flat.to_pylist() == [3, 4, 5, 6]


def test_numbers_are_a_view_of_arrow_where_the_type_matches() -> None:
    flat = pa.array(np.arange(5, dtype=np.int64))
    got = _numbers(flat, pa.int64(), -1)
    assert np.shares_memory(got, np.frombuffer(flat.buffers()[1], np.int64))
    assert _numbers(pa.array([1, None, 3], pa.int32()), pa.int64(), -1).tolist() == [1, -1, 3]
    doubles = _numbers(pa.array([0.1, None]), pa.float32(), np.nan)
    assert doubles.dtype == np.float32 and doubles[0] == np.float32(0.1) and np.isnan(doubles[1])


def test_sparse_lists_of_other_number_types(tmp_path: Path) -> None:
    # int32 indices and double values, in a sliced table: read as int64 and float32
    table = pa.table(
        {
            "label": floats([1, 0, 1]),
            "indices": pa.array([[1, 9], [], [2**30]], pa.list_(pa.int32())),
            "values": pa.array([[0.5, 2.0], [], [0.1]], pa.large_list(pa.float64())),
        }
    )
    path = tmp_path / "d.parquet"
    pq.write_table(table.slice(1), path)
    got = read(path)
    indptr, indices, values = got.csr
    assert indptr.tolist() == [0, 0, 1] and indices.tolist() == [2**30]
    assert values.dtype == np.float32 and values.tolist() == [np.float32(0.1)]
