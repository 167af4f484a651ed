"""The checks of a bag-of-words channel, in every layout: a negative count and an empty
document are bad rows (named by file, line and field, or skipped and counted); other channels
keep taking empty sparse rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamfit.data.chunk import sparse_record_batch
from tests.data.conftest import expect_data_error, read, write, write_lines

BOW = {"labelled": False, "bag_of_words": True, "max_index": 10}


@pytest.mark.parametrize(
    ("name", "lines", "row", "field", "message"),
    [
        ("d.libsvm", ["0 1:2 3:1", "0 2:1 3:-1"], 2, "feature index 3", "negative count (-1.0)"),
        (
            "d.jsonl",
            ['{"indices": [1], "values": [2]}', '{"indices": [4, 5], "values": [1, -2]}'],
            2,
            "feature index 5",
            "negative count (-2.0)",
        ),
        ("d.csv", ["1,0,2", "0,-1,3"], 2, "column 2", "negative count (-1.0)"),
        ("d.libsvm", ["0 1:2", "0 3:nan"], 2, "feature index 3", "non-finite value (nan)"),
        ("d.libsvm", ["0 1:2", "0 12:1"], 2, "feature index 12", "index out of range [0, 10)"),
    ],
)
def test_bad_counts_are_named(
    tmp_path: Path, name: str, lines: list[str], row: int, field: str, message: str
) -> None:
    labelled = name.endswith(".libsvm")  # libsvm rows start with a label
    options = {**BOW, "labelled": labelled}
    expect_data_error(
        write_lines(tmp_path / name, lines), row=row, field=field, message=message, **options
    )
    got = read(tmp_path / name, on_bad_rows="skip", **options)
    assert got.positions.tolist() == [0] and got.bad.tolist() == [1]


@pytest.mark.parametrize(
    ("name", "lines"),
    [
        ("d.libsvm", ["0 1:2", "0", "0 3:1"]),
        ("d.jsonl", ['{"indices": [1]}', '{"indices": [], "values": []}', '{"indices": [3]}']),
        ("d.libsvm", ["0 1:2", "0 4:0 5:0", "0 3:1"]),  # zeros only: nothing counted either
        ("d.csv", ["1,0,2", "0,0,0", "0,1,0"]),
    ],
)
def test_an_empty_document_is_a_bad_row_of_a_bag_of_words_channel(
    tmp_path: Path, name: str, lines: list[str]
) -> None:
    labelled = name.endswith(".libsvm")
    path = write_lines(tmp_path / name, lines)
    expect_data_error(
        path, row=2, field=None, message="an empty document", **{**BOW, "labelled": labelled}
    )
    got = read(path, **{**BOW, "labelled": labelled, "on_bad_rows": "skip"})
    assert got.positions.tolist() == [0, 2] and got.bad.tolist() == [1]
    other = read(path, labelled=labelled, max_index=10)  # not a bag of words: three rows
    assert other.positions.tolist() == [0, 1, 2]


def test_parquet_rows_are_checked_the_same(tmp_path: Path) -> None:
    batch = sparse_record_batch(
        np.array([0, 2, 2, 3]),
        np.array([1, 4, 2]),
        np.array([1.0, 2.0, -3.0], dtype=np.float32),
        None,
    )
    path = write(tmp_path / "d.parquet", batch)
    got = read(path, on_bad_rows="skip", **BOW)
    assert got.positions.tolist() == [0] and got.bad.tolist() == [1, 2]
