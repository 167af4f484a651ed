"""libsvm: sparse ``label index:value`` rows, indices as written, ``qid:`` and ``#`` comments
ignored, and bad rows named by line and token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.data.conftest import (
    assert_same_rows,
    dense_batch,
    expect_data_error,
    read,
    sparse_batch,
    write,
    write_lines,
)

GOOD = ["1 0:0.5 7:2", "0", "-1 3:-1e-3 4:4"]


def test_sparse_round_trip_is_exact(tmp_path: Path) -> None:
    batch = sparse_batch(300, d=1000, nnz=6)
    got = read(write(tmp_path / "d.libsvm", batch))
    assert got.sparse
    assert_same_rows(got, batch)
    np.testing.assert_array_equal(got.positions, np.arange(300))


def test_dense_rows_round_trip_without_their_zeros(tmp_path: Path) -> None:
    batch = dense_batch(50, 5)
    x = batch.column(1).flatten().to_numpy().reshape(50, 5).copy()
    got = read(write(tmp_path / "d.libsvm", batch))
    assert_same_rows(got, batch, width=5)
    assert got.csr[1].max() == 4 and len(got.csr[1]) == np.count_nonzero(x)


def test_values_as_written(tmp_path: Path) -> None:
    got = read(write_lines(tmp_path / "d.libsvm", [*GOOD, "+1\t2:1.5   9:1e2 "]))
    assert got.labels.tolist() == [1, 0, -1, 1]
    indptr, indices, values = got.csr
    assert indptr.tolist() == [0, 2, 2, 4, 6]
    assert indices.tolist() == [0, 7, 3, 4, 2, 9]
    np.testing.assert_array_equal(values, np.array([0.5, 2, -1e-3, 4, 1.5, 100], np.float32))


def test_indices_are_used_as_written(tmp_path: Path) -> None:
    # 1-based files leave column 0 empty; nothing is shifted
    got = read(write_lines(tmp_path / "d.libsvm", ["1 1:1 2:1", "0 3:1"]))
    assert got.csr[1].tolist() == [1, 2, 3]


def test_large_indices_are_exact(tmp_path: Path) -> None:
    big = [2**24 + 1, 2**31 + 3, 2**40 + 5]
    line = "1 " + " ".join(f"{i}:1" for i in big)
    assert read(write_lines(tmp_path / "d.libsvm", [line])).csr[1].tolist() == big


def test_qid_and_comments_are_ignored(tmp_path: Path) -> None:
    lines = [
        "# a comment line",
        "1 qid:3 0:0.5 7:2 # trailing comment",
        "0 qid:3",
        "",
        "-1 qid:4 3:-1e-3 4:4#no space before the comment",
    ]
    got = read(write_lines(tmp_path / "d.libsvm", lines))
    assert got.positions.tolist() == [1, 2, 4]
    assert got.labels.tolist() == [1, 0, -1]
    assert got.csr[1].tolist() == [0, 7, 3, 4]
    assert got.end == 5


@pytest.mark.parametrize("block_bytes", [1 << 20, 4])
def test_blank_lines_keep_positions_equal_to_line_indices(tmp_path: Path, block_bytes: int) -> None:
    lines = ["", "  ", GOOD[0], "", GOOD[1], "\r", "", GOOD[2], ""]
    got = read(write_lines(tmp_path / "d.libsvm", lines), block_bytes=block_bytes)
    assert got.positions.tolist() == [2, 4, 7]
    assert got.labels.tolist() == [1, 0, -1]
    assert got.end == len(lines)


def test_unlabelled_data_keeps_a_label_token_that_is_ignored(tmp_path: Path) -> None:
    batch = sparse_batch(10).drop_columns(["label"])
    path = write(tmp_path / "d.libsvm", batch)
    assert all(line.startswith("0 ") for line in path.read_text().splitlines())
    got = read(path, labelled=False)
    assert got.labels is None
    assert_same_rows(got, batch)


# Each bad row, as line 3: (row, field, message).
BAD_ROWS = {
    "non-numeric value": ("1 3:x", "token '3:x'", "not a number"),
    "no colon": ("1 3", "token '3'", "expected index:value"),
    "empty value": ("1 3:", "token '3:'", "not a number"),
    "fractional index": ("1 3.5:1", "token '3.5:1'", "not a number"),
    "non-numeric index": ("1 a:1", "token 'a:1'", "not a number"),
    "non-numeric label": ("yes 3:1", "label", "not a number"),
    "NaN label": ("nan 3:1", "label", "missing or non-numeric label (nan)"),
    "NaN value": ("1 3:nan", "feature index 3", "non-finite value (nan)"),
    "inf value": ("1 2:1 3:inf", "feature index 3", "non-finite value (inf)"),
    "negative index": ("1 -3:1", "feature index -3", "index out of range [0, 50)"),
    "index -1": ("1 -1:1", "feature index -1", "index out of range [0, 50)"),
    "index at max_index": ("1 3:1 50:1", "feature index 50", "index out of range [0, 50)"),
    "index 10**23": ("1 1" + "0" * 23 + ":1", "token '1" + "0" * 23 + ":1'", "beyond 64 bits"),
    "index 2**63": ("1 9223372036854775808:1", "token '9223372036854775808:1'", "beyond 64"),
    "index -(2**63) - 1": ("1 -9223372036854775809:1", "token '-9223372036854775809:1'", "beyond"),
    "index 2**63 - 1": ("1 9223372036854775807:1", "feature index 9223372036854775807", "range"),
    "value 1e999": ("1 3:1e999", "feature index 3", "non-finite value (inf)"),
}


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_bad_row_is_a_data_error_naming_line_and_token(tmp_path: Path, kind: str) -> None:
    row, field, message = BAD_ROWS[kind]
    path = write_lines(tmp_path / "train.libsvm", [GOOD[0], GOOD[1], row, GOOD[2]])
    expect_data_error(path, row=3, field=field, message=message, max_index=50)


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_bad_row_after_comments_in_a_later_block(tmp_path: Path, kind: str) -> None:
    row, field, message = BAD_ROWS[kind]
    lines = [GOOD[0], "# comment", GOOD[2], "", row, GOOD[1]]
    path = write_lines(tmp_path / "train.libsvm", lines)
    expect_data_error(path, row=5, field=field, message=message, max_index=50, block_bytes=6)


def test_no_max_index_accepts_any_index(tmp_path: Path) -> None:
    got = read(write_lines(tmp_path / "d.libsvm", ["1 3:1 50:1"]))
    assert got.csr[1].tolist() == [3, 50]


def test_without_max_index_a_negative_index_is_still_a_bad_row(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.libsvm", ["1 3:1", "0 -2:1"])
    expect_data_error(path, row=2, field="feature index -2", message="negative index")
    expect_data_error(
        write_lines(tmp_path / "e.libsvm", ["1 3:1", "0 1" + "0" * 23 + ":1"]),
        row=2,
        field="token '1" + "0" * 23 + ":1'",
        message="index beyond 64 bits",
    )


@pytest.mark.parametrize("block_bytes", [1 << 20, 10])
def test_skip_mode_drops_every_kind_of_bad_row_and_lists_it(
    tmp_path: Path, block_bytes: int
) -> None:
    lines = []
    for row, _, _ in BAD_ROWS.values():
        lines += [GOOD[0], row]
    path = write_lines(tmp_path / "train.libsvm", [*lines, GOOD[2]])
    got = read(path, on_bad_rows="skip", max_index=50, block_bytes=block_bytes)
    n_bad = len(BAD_ROWS)
    assert got.bad.tolist() == list(range(1, 2 * n_bad, 2))
    assert got.positions.tolist() == list(range(0, 2 * n_bad + 1, 2))
    assert got.csr[1].tolist() == [0, 7] * n_bad + [3, 4]


@pytest.mark.parametrize("k", [0, 1, 2, 3, 5, 7, 8])
def test_skip_with_comments_blank_lines_and_bad_rows(tmp_path: Path, k: int) -> None:
    lines = [GOOD[0], "# c", GOOD[1], "1 x", GOOD[2], "", GOOD[0], "1 99:1"]
    path = write_lines(tmp_path / "d.libsvm", lines)
    options = {"on_bad_rows": "skip", "max_index": 50, "block_bytes": 9}
    full = read(path, **options)
    resumed = read(path, skip=k, **options)
    keep = full.positions >= k
    assert [int(p) for c in resumed.chunks for p in c.positions] == full.positions[keep].tolist()
    assert [int(p) for c in resumed.chunks for p in c.bad] == [p for p in full.bad if p >= k]
    if keep.any():
        np.testing.assert_array_equal(resumed.labels, full.labels[keep])
