"""JSON Lines: dense ``features`` and sparse ``indices``/``values`` objects, blank lines, and
bad rows named by line and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamfit.errors import DataError
from tests.data.conftest import (
    assert_same_rows,
    dense_batch,
    expect_data_error,
    read,
    sparse_batch,
    unlabelled,
    write,
    write_lines,
)

GOOD = [
    '{"label": 1, "features": [0.5, 2, 3]}',
    '{"features": [1, -2, 0.003], "label": 0, "id": "ignored"}',
    '{"label": 1.5, "features": [4, 5, 6]}',
]
SPARSE = [
    '{"label": 1, "indices": [0, 7], "values": [0.5, 2]}',
    '{"label": 0, "indices": [], "values": []}',
    '{"label": 1, "indices": [3], "values": [-1]}',
]


def test_dense_round_trip_is_exact(tmp_path: Path) -> None:
    batch = dense_batch(200, 7)
    got = read(write(tmp_path / "d.jsonl", batch))
    assert not got.sparse
    assert_same_rows(got, batch)
    np.testing.assert_array_equal(got.positions, np.arange(200))


def test_sparse_round_trip_is_exact(tmp_path: Path) -> None:
    batch = sparse_batch(200)
    got = read(write(tmp_path / "d.jsonl", batch))
    assert got.sparse
    assert_same_rows(got, batch)


def test_values_as_written(tmp_path: Path) -> None:
    got = read(write_lines(tmp_path / "d.jsonl", GOOD))
    assert got.labels.tolist() == [1, 0, 1.5]
    np.testing.assert_array_equal(
        got.x, np.array([[0.5, 2, 3], [1, -2, 0.003], [4, 5, 6]], np.float32)
    )
    sparse = read(write_lines(tmp_path / "s.jsonl", SPARSE))
    indptr, indices, values = sparse.csr
    assert indptr.tolist() == [0, 2, 2, 3]
    assert indices.tolist() == [0, 7, 3] and values.tolist() == [0.5, 2, -1]


def test_sparse_values_default_to_ones(tmp_path: Path) -> None:
    got = read(write_lines(tmp_path / "d.jsonl", ['{"label": 1, "indices": [2, 5]}']))
    assert got.csr[1].tolist() == [2, 5] and got.csr[2].tolist() == [1, 1]


def test_large_sparse_indices_are_exact(tmp_path: Path) -> None:
    # beyond 2**24 a float32 cannot hold every integer; hashed feature spaces go there
    big = [2**24 + 1, 2**31 + 3, 2**40 + 5]
    row = {"label": 1, "indices": big, "values": [1, 2, 3]}
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(row)])
    assert read(path).csr[1].tolist() == big


def test_unlabelled_rows(tmp_path: Path) -> None:
    batch = unlabelled(dense_batch(20))
    path = write(tmp_path / "d.jsonl", batch)
    assert '"label"' not in path.read_text()
    got = read(path, labelled=False)
    assert got.labels is None
    assert_same_rows(got, batch)


def test_named_label_key(tmp_path: Path) -> None:
    lines = ['{"y": 1, "features": [1, 2]}', '{"y": 0, "label": 5, "features": [3, 4]}']
    got = read(write_lines(tmp_path / "d.jsonl", lines), label_column="y")
    assert got.labels.tolist() == [1, 0]


@pytest.mark.parametrize("block_bytes", [1 << 20, 4])
@pytest.mark.parametrize("rows", [GOOD, SPARSE], ids=["dense", "sparse"])
def test_blank_lines_keep_positions_equal_to_line_indices(
    tmp_path: Path, block_bytes: int, rows: list[str]
) -> None:
    lines = ["", "  ", rows[0], "", rows[1], "\r", "", rows[2], ""]
    got = read(write_lines(tmp_path / "d.jsonl", lines), block_bytes=block_bytes)
    assert got.positions.tolist() == [2, 4, 7]
    assert got.end == len(lines)


# Each bad dense row, as line 3 of a file of 3-feature rows: (row, field, message).
BAD_ROWS = {
    "non-numeric feature": ('{"label": 1, "features": [1, "a", 3]}', "features", "'a' is not"),
    "null feature": ('{"label": 1, "features": [1, null, 3]}', "features[1]", "non-finite"),
    "NaN feature": ('{"label": 1, "features": [1, NaN, 3]}', "features[1]", "non-finite"),
    "inf feature": ('{"label": 1, "features": [1, 2, Infinity]}', "features[2]", "non-finite"),
    "too many features": ('{"label": 1, "features": [1, 2, 3, 4]}', "features", "4 features"),
    "too few features": ('{"label": 1, "features": [1]}', "features", "1 features where"),
    "features not a list": ('{"label": 1, "features": 7}', "features", "not a list but a number"),
    "no features": ('{"label": 1}', "features", "missing field"),
    "no label": ('{"features": [1, 2, 3]}', "label", "missing"),
    "null label": ('{"label": null, "features": [1, 2, 3]}', "label", "missing"),
    "string label": ('{"label": "1", "features": [1, 2, 3]}', "label", "'1' is not a number"),
    "boolean label": ('{"label": true, "features": [1, 2, 3]}', "label", "True is not"),
    "NaN label": ('{"label": NaN, "features": [1, 2, 3]}', "label", "non-numeric label (nan)"),
    "not an object": ("[1, 2, 3]", None, "not a JSON object but a list"),
    "invalid JSON": ('{"label": 1, "features": [1, 2, 3]', None, "not valid JSON"),
    "null": ("null", None, "not a JSON object but null"),
    "a number": ("12", None, "not a JSON object but a number"),
    "a string": ('"row"', None, "not a JSON object but a string"),
    "features an object": ('{"label": 1, "features": {"a": 1}}', "features", "not a list but an"),
    "nested features": ('{"label": 1, "features": [[1], 2, 3]}', "features", "[1] is not a number"),
    "label a list": ('{"label": [1], "features": [1, 2, 3]}', "label", "[1] is not a number"),
    "nested 100,000 deep": (
        '{"label": 1, "features": ' + "[" * 100_000 + "]" * 100_000 + "}",
        None,
        "nested too deep to be a row",
    ),
    "a huge integer": (
        '{"label": 1, "features": [1, ' + "9" * 400 + ", 3]}",
        "features[1]",
        "non-finite value (inf)",
    ),
    "1e400": ('{"label": 1, "features": [1, 1e400, 3]}', "features[1]", "non-finite value (inf)"),
}


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_bad_row_is_a_data_error_naming_line_and_field(tmp_path: Path, kind: str) -> None:
    row, field, message = BAD_ROWS[kind]
    path = write_lines(tmp_path / "train.jsonl", [GOOD[0], GOOD[1], row, GOOD[2]])
    expect_data_error(path, row=3, field=field, message=message)


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_bad_row_at_the_start_of_a_later_block(tmp_path: Path, kind: str) -> None:
    row, field, message = BAD_ROWS[kind]
    lines = [GOOD[0], GOOD[1], "", row, GOOD[2]]
    path = write_lines(tmp_path / "train.jsonl", lines)
    # blocks of about one line: the bad row opens a block of its own
    expect_data_error(path, row=4, field=field, message=message, block_bytes=8)


@pytest.mark.parametrize("block_bytes", [1 << 20, 8])
def test_skip_mode_drops_every_kind_of_bad_row_and_lists_it(
    tmp_path: Path, block_bytes: int
) -> None:
    lines = []
    for row, _, _ in BAD_ROWS.values():
        lines += [GOOD[0], row]
    path = write_lines(tmp_path / "train.jsonl", [*lines, GOOD[2]])
    got = read(path, on_bad_rows="skip", block_bytes=block_bytes)
    n_bad = len(BAD_ROWS)
    assert got.bad.tolist() == list(range(1, 2 * n_bad, 2))
    assert got.positions.tolist() == list(range(0, 2 * n_bad + 1, 2))
    np.testing.assert_array_equal(got.x, [[0.5, 2, 3]] * n_bad + [[4, 5, 6]])
    assert got.labels.tolist() == [1] * n_bad + [1.5]


SPARSE_BAD_ROWS = {
    "index out of range": (
        '{"label": 1, "indices": [3, 50], "values": [1, 2]}',
        "feature index 50",
        "index out of range [0, 50)",
    ),
    "negative index": (
        '{"label": 1, "indices": [-1], "values": [1]}',
        "feature index -1",
        "index out of range",
    ),
    "fractional index": (
        '{"label": 1, "indices": [1.5], "values": [1]}',
        "indices",
        "1.5 is not an index",
    ),
    "lengths differ": (
        '{"label": 1, "indices": [1, 2], "values": [1]}',
        "values",
        "2 indices but 1 values",
    ),
    "NaN value": (
        '{"label": 1, "indices": [4], "values": [NaN]}',
        "feature index 4",
        "non-finite value",
    ),
    "non-numeric value": (
        '{"label": 1, "indices": [4], "values": ["x"]}',
        "values",
        "'x' is not a number",
    ),
    "no indices": ('{"label": 1, "values": [1]}', "indices", "missing field"),
    "index 10**23": ('{"label": 1, "indices": [1e23], "values": [1]}', "indices", "beyond 64 bits"),
    "index beyond int64": (
        '{"label": 1, "indices": [9223372036854775808], "values": [1]}',
        "indices",
        "index 9223372036854775808 is beyond 64 bits",
    ),
    "index of 400 digits": (
        '{"label": 1, "indices": [' + "9" * 400 + '], "values": [1]}',
        "indices",
        "is beyond 64 bits",
    ),
    "indices not a list": ('{"label": 1, "indices": 3, "values": [1]}', "indices", "not a list"),
    "no label": ('{"indices": [1], "values": [1]}', "label", "missing"),
}


@pytest.mark.parametrize("kind", SPARSE_BAD_ROWS)
def test_bad_sparse_row_is_a_data_error(tmp_path: Path, kind: str) -> None:
    row, field, message = SPARSE_BAD_ROWS[kind]
    path = write_lines(tmp_path / "train.jsonl", [SPARSE[0], SPARSE[1], row])
    expect_data_error(path, row=3, field=field, message=message, max_index=50)


def test_skip_mode_drops_bad_sparse_rows(tmp_path: Path) -> None:
    rows = [row for row, _, _ in SPARSE_BAD_ROWS.values()]
    path = write_lines(tmp_path / "train.jsonl", [SPARSE[0], *rows, SPARSE[2]])
    got = read(path, on_bad_rows="skip", max_index=50)
    assert got.positions.tolist() == [0, len(rows) + 1]
    assert got.bad.tolist() == list(range(1, len(rows) + 1))
    assert got.csr[1].tolist() == [0, 7, 3]


def test_named_label_is_the_field_of_a_label_error(tmp_path: Path) -> None:
    lines = ['{"y": 1, "features": [1, 2]}', '{"y": null, "features": [3, 4]}']
    path = write_lines(tmp_path / "d.jsonl", lines)
    expect_data_error(path, label_column="y", row=2, field="y", message="missing")


def test_width_mismatch_in_a_later_file(tmp_path: Path) -> None:
    write_lines(tmp_path / "d" / "a.jsonl", GOOD)
    write_lines(tmp_path / "d" / "b.jsonl", ['{"label": 0, "features": [1, 2]}'])
    expect_data_error(
        tmp_path / "d", file="b.jsonl", row=1, field="features", message="2 features where"
    )
    got = read(tmp_path / "d", on_bad_rows="skip")
    assert got.positions.tolist() == [0, 1, 2] and got.bad.tolist() == [3]


def test_width_mismatch_in_a_later_chunk(tmp_path: Path) -> None:
    lines = [GOOD[i % 3] for i in range(12)]
    lines[9] = '{"label": 0, "features": [1, 2, 3, 4, 5]}'
    path = write_lines(tmp_path / "d.jsonl", lines)
    expect_data_error(path, row=10, field="features", message="5 features", block_bytes=100)
    got = read(path, on_bad_rows="skip", block_bytes=100)
    assert got.bad.tolist() == [9] and len(got.positions) == 11


@pytest.mark.parametrize("k", [0, 2, 3, 4, 6, 8, 9])
def test_skip_with_blank_lines_and_bad_rows(tmp_path: Path, k: int) -> None:
    lines = [GOOD[0], "", GOOD[1], "[]", GOOD[2], "", GOOD[0], '{"label": 1}', ""]
    path = write_lines(tmp_path / "d.jsonl", lines)
    # a resumed read knows the width (see test_first_block_of_only_bad_rows for why it must)
    full = read(path, on_bad_rows="skip", block_bytes=20)
    resumed = read(path, on_bad_rows="skip", block_bytes=20, skip=k, n_features=3)
    keep = full.positions >= k
    assert [int(p) for c in resumed.chunks for p in c.positions] == full.positions[keep].tolist()
    assert [int(p) for c in resumed.chunks for p in c.bad] == [p for p in full.bad if p >= k]
    if keep.any():
        np.testing.assert_array_equal(resumed.x, full.x[keep])


def test_first_block_of_only_bad_rows(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", ["[]", GOOD[0]])
    got = read(path, on_bad_rows="skip", block_bytes=4)
    assert got.bad.tolist() == [0] and got.positions.tolist() == [1]


@pytest.mark.parametrize("first", ["null", "  null", "7", "[]", '"x"', "\xff\xfe"])
def test_a_first_line_that_is_no_object_is_a_bad_row(tmp_path: Path, first: str) -> None:
    # pyarrow's reader crashes (SIGSEGV) on a first line "null": it must never see one.
    path = tmp_path / "train.jsonl"
    path.write_bytes(first.encode("latin-1") + b"\n" + (GOOD[0] + "\n").encode())
    with pytest.raises(DataError, match=r"train\.jsonl, line 1: not "):
        read(path)
    got = read(path, on_bad_rows="skip")
    assert got.bad.tolist() == [0] and got.positions.tolist() == [1]


TEXT = [
    '{"text": "The GPU kernel", "id": 7}',
    "",
    '{"label": 3, "text": "Rust and the GPU"}',
]


def test_text_rows_are_documents(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", TEXT)
    got = read(path, labelled=False, max_index=64)
    assert got.sparse and got.labels is None and got.positions.tolist() == [0, 2]
    words = [sorted(r["words"]) for c in got.chunks for r in c.batch.to_pylist()]
    assert words == [["gpu", "kernel"], ["gpu", "rust"]]


def test_labelled_text_rows(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "d.jsonl", ['{"label": 1, "text": "gpu"}', '{"label": 0, "text": "cpu"}']
    )
    got = read(path, max_index=64)
    assert got.labels.tolist() == [1, 0] and got.csr[0].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ('{"text": 5}', "text", "not a string but a number"),
        ('{"text": null}', "text", "not a string but null"),
        ('{"other": "words"}', "text", "missing field"),
        ('{"text": "the and of"}', None, "an empty document (no word but stop words)"),
    ],
)
def test_bad_text_rows_are_named(
    tmp_path: Path, line: str, field: str | None, message: str
) -> None:
    path = write_lines(tmp_path / "d.jsonl", ['{"text": "kernel"}', line, '{"text": "gpu"}'])
    expect_data_error(
        path, row=2, field=field, message=message, labelled=False, max_index=64, bag_of_words=True
    )
    got = read(path, labelled=False, max_index=64, bag_of_words=True, on_bad_rows="skip")
    assert got.positions.tolist() == [0, 2] and got.bad.tolist() == [1]


def test_the_first_row_sets_the_layout(tmp_path: Path) -> None:
    """A text file's rows need ``text``; dense and sparse files read as before."""
    mixed = write_lines(tmp_path / "d.jsonl", ['{"text": "kernel"}', '{"features": [1, 2]}'])
    expect_data_error(
        mixed, row=2, field="text", message="missing field", labelled=False, max_index=8
    )
    dense = read(
        write_lines(tmp_path / "e.jsonl", ['{"features": [1, 2], "text": "ignored"}']),
        labelled=False,
    )
    assert not dense.sparse


def test_a_text_that_is_not_utf8_is_a_bad_row(tmp_path: Path) -> None:
    """pyarrow parses the line; its string is not UTF-8 (found by the fuzzer)."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "gpu"}\n{"text": "\x80\x94 kernel"}\n')
    expect_data_error(path, row=2, field=None, message="not UTF-8", labelled=False, max_index=8)
