"""Writers: every format reads back exactly, and converting between formats keeps the data."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfit.data.chunk import dense_record_batch, sparse_arrays, sparse_record_batch
from streamfit.data.writers import WRITERS, write_csv, write_jsonl, write_libsvm
from streamfit.datagen import write_batches
from streamfit.errors import ConfigError
from tests.data.conftest import (
    EXTENSIONS,
    FORMATS,
    SPARSE_FORMATS,
    assert_same_rows,
    dense_batch,
    read,
    sparse_batch,
    unlabelled,
    write,
)

D = 4


def convert(src: Path, dst: Path, **options: object) -> Path:
    """What ``streamfit convert`` does: read ``src``, write its chunks to ``dst``."""
    return write(dst, [c.batch for c in read(src, **options).chunks])  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_dense_round_trip_is_exact(tmp_path: Path, fmt: str) -> None:
    batch = dense_batch(100, D)
    got = read(write(tmp_path / f"d{EXTENSIONS[fmt]}", batch))
    assert_same_rows(got, batch, width=D if fmt == "libsvm" else None)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unlabelled_round_trip_is_exact(tmp_path: Path, fmt: str) -> None:
    batch = unlabelled(dense_batch(100, D))
    got = read(write(tmp_path / f"d{EXTENSIONS[fmt]}", batch), labelled=False)
    assert_same_rows(got, batch, width=D if fmt == "libsvm" else None)


@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
def test_sparse_round_trip_is_exact(tmp_path: Path, fmt: str) -> None:
    batch = sparse_batch(100, d=1 << 20, nnz=5)
    assert_same_rows(read(write(tmp_path / f"d{EXTENSIONS[fmt]}", batch)), batch)


def test_extreme_values_round_trip(tmp_path: Path) -> None:
    x = np.array([[1e-38, -3.4e38, 1 / 3], [0.1, -0.0, 16777217]], dtype=np.float32)
    batch = dense_record_batch(x, np.array([1e-7, 123456.789], np.float32))
    for fmt in FORMATS:
        got = read(write(tmp_path / f"d{EXTENSIONS[fmt]}", batch))
        np.testing.assert_array_equal(got.matrix(3), x, err_msg=fmt)
        np.testing.assert_array_equal(got.labels, batch.column(0).to_numpy(), err_msg=fmt)


@pytest.mark.parametrize("dst", FORMATS)
@pytest.mark.parametrize("src", ["csv", "parquet", "jsonl"])
def test_dense_conversions_keep_the_data(tmp_path: Path, src: str, dst: str) -> None:
    batch = dense_batch(60, D)
    first = write(tmp_path / f"a{EXTENSIONS[src]}", batch)
    second = convert(first, tmp_path / f"b{EXTENSIONS[dst]}", block_bytes=256)
    assert_same_rows(read(second), batch, width=D if dst == "libsvm" else None)


@pytest.mark.parametrize("dst", SPARSE_FORMATS)
@pytest.mark.parametrize("src", SPARSE_FORMATS)
def test_sparse_conversions_keep_the_data(tmp_path: Path, src: str, dst: str) -> None:
    batch = sparse_batch(60, d=1000)
    first = write(tmp_path / f"a{EXTENSIONS[src]}", batch)
    second = convert(first, tmp_path / f"b{EXTENSIONS[dst]}", block_bytes=256)
    assert_same_rows(read(second), batch)


def test_round_of_conversions_through_every_format(tmp_path: Path) -> None:
    batch = dense_batch(50, D)
    path = write(tmp_path / "0.csv", batch)
    for i, ext in enumerate([".parquet", ".jsonl", ".csv", ".libsvm", ".jsonl", ".parquet"]):
        path = convert(path, tmp_path / f"{i + 1}{ext}")
    assert_same_rows(read(path), batch, width=D)


def test_csv_refuses_sparse_rows() -> None:
    with pytest.raises(ConfigError, match="CSV holds dense rows only"):
        write_csv([sparse_batch(3)], io.BytesIO())


def test_csv_refuses_sparse_rows_read_from_a_file(tmp_path: Path) -> None:
    src = write(tmp_path / "d.libsvm", sparse_batch(5))
    with pytest.raises(ConfigError, match="CSV holds dense rows only"):
        convert(src, tmp_path / "d.csv")


@pytest.mark.parametrize("fmt", FORMATS)
def test_writers_count_the_rows_of_every_batch(tmp_path: Path, fmt: str) -> None:
    batches = [dense_batch(7, D), dense_batch(1, D).slice(0, 0), dense_batch(5, D, offset=9)]
    path = tmp_path / f"d{EXTENSIONS[fmt]}"
    with open(path, "wb") as f:
        assert WRITERS[fmt](batches, f) == 12
    got = read(path)
    assert got.positions.tolist() == list(range(12))


def test_parquet_is_written_in_row_groups_of_65536(tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", [dense_batch(40_000, 2), dense_batch(40_000, 2, offset=1)])
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [65_536, 14_464]
    assert [c.n_rows for c in read(path).chunks] == [65_536, 14_464]


def test_text_writers_output() -> None:
    dense = dense_record_batch(np.array([[0, 2, 0.25]], np.float32), np.array([1.5], np.float32))
    sparse = sparse_record_batch(
        np.array([0, 2]), np.array([3, 9]), np.array([0.5, -1], np.float32), np.array([0.0])
    )
    out = io.BytesIO()
    write_libsvm([dense, sparse], out)
    assert out.getvalue() == b"1.5 1:2 2:0.25\n0 3:0.5 9:-1\n"
    out = io.BytesIO()
    write_jsonl([dense, sparse], out)
    assert out.getvalue().decode().splitlines() == [
        '{"label": 1.5, "features": [0.0, 2.0, 0.25]}',
        '{"label": 0.0, "indices": [3, 9], "values": [0.5, -1.0]}',
    ]


def test_write_batches_picks_the_format_from_the_name(tmp_path: Path) -> None:
    batch = dense_batch(10, D)
    for name in ["d.csv", "d.parquet", "d.jsonl", "d.svm"]:
        assert write_batches(tmp_path / name, iter([batch])) == 10
        assert_same_rows(read(tmp_path / name), batch, width=D if name == "d.svm" else None)


def test_sparse_batches_with_64_bit_offsets_write_and_read(tmp_path: Path) -> None:
    batch = sparse_batch(5, d=100)
    indptr, indices, values = sparse_arrays(batch)
    offsets = pa.array(indptr, pa.int64())
    large = pa.RecordBatch.from_arrays(
        [
            batch.column(0),
            pa.LargeListArray.from_arrays(offsets, pa.array(indices)),
            pa.LargeListArray.from_arrays(offsets, pa.array(values)),
        ],
        ["label", "indices", "values"],
    )
    for fmt in SPARSE_FORMATS:
        assert_same_rows(read(write(tmp_path / f"d{EXTENSIONS[fmt]}", large)), batch)
