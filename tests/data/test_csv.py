"""CSV: SageMaker's layout (no header, label first), headers with a named label column,
unlabelled data, blank lines, and bad rows named by line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamfit.data.writers import write_csv
from tests.data.conftest import (
    assert_same_rows,
    dense_batch,
    expect_data_error,
    read,
    unlabelled,
    write,
    write_lines,
)

GOOD = ["1,0.5,2,3", "0,1,-2,3e-3", "1,4,5,6"]


def test_round_trip_is_exact(tmp_path: Path) -> None:
    batch = dense_batch(200, 7)
    got = read(write(tmp_path / "d.csv", batch))
    assert_same_rows(got, batch)
    np.testing.assert_array_equal(got.positions, np.arange(200))
    assert got.end == 200


def test_values_as_written(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.csv", [*GOOD, '0,"7.5", 8 ,-1e2'])
    got = read(path)
    np.testing.assert_array_equal(got.labels, [1, 0, 1, 0])
    np.testing.assert_array_equal(
        got.x, np.array([[0.5, 2, 3], [1, -2, 3e-3], [4, 5, 6], [7.5, 8, -100]], np.float32)
    )


def test_unlabelled_rows_have_no_label_column(tmp_path: Path) -> None:
    batch = unlabelled(dense_batch(30, 4))
    path = write(tmp_path / "d.csv", batch)
    assert path.read_text().splitlines()[0].count(",") == 3
    got = read(path, labelled=False)
    assert got.labels is None
    assert_same_rows(got, batch)


@pytest.mark.parametrize("block_bytes", [1 << 20, 5])
def test_blank_lines_keep_positions_equal_to_line_indices(tmp_path: Path, block_bytes: int) -> None:
    lines = ["", "", GOOD[0], "", "   ", GOOD[1], "\r", "", GOOD[2], "", ""]
    got = read(write_lines(tmp_path / "d.csv", lines), block_bytes=block_bytes)
    assert got.positions.tolist() == [2, 5, 8]
    assert got.labels.tolist() == [1, 0, 1]
    assert got.end == len(lines)


def test_windows_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"1,2,3\r\n\r\n0,4,5\r\n")
    got = read(path)
    assert got.positions.tolist() == [0, 2]
    np.testing.assert_array_equal(got.x, [[2, 3], [4, 5]])


def test_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"1,2,3\n0,4,5")
    got = read(path, block_bytes=4)
    assert got.positions.tolist() == [0, 1] and got.end == 2


# Each bad row, as line 3 of a file of 3-feature rows: (row, field, message).
BAD_ROWS = {
    "non-numeric feature": ("1,0.5,x,3", "column 3", "could not parse 'x' as a number"),
    "non-numeric label": ("yes,0.5,2,3", "column 1", "could not parse 'yes' as a number"),
    "empty feature": ("1,0.5,,3", "column 3", "empty field"),
    "empty label": (",0.5,2,3", "column 1", "empty field"),
    "NaN feature": ("1,0.5,nan,3", "column 3", "non-finite value (nan)"),
    "inf feature": ("1,0.5,2,inf", "column 4", "non-finite value (inf)"),
    "-inf feature": ("1,-inf,2,3", "column 2", "non-finite value (-inf)"),
    "NaN label": ("NaN,0.5,2,3", "column 1", "missing or non-numeric label (nan)"),
    "too many fields": ("1,0.5,2,3,4", None, "5 fields where the data has 4"),
    "too few fields": ("1,0.5,2", None, "3 fields where the data has 4"),
}


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_bad_row_is_a_data_error_naming_line_and_column(tmp_path: Path, kind: str) -> None:
    row, field, message = BAD_ROWS[kind]
    path = write_lines(tmp_path / "train.csv", [GOOD[0], GOOD[1], row, GOOD[2]])
    expect_data_error(path, row=3, field=field, message=message)


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_bad_row_names_its_line_after_blank_lines_in_a_later_block(
    tmp_path: Path, kind: str
) -> None:
    row, field, message = BAD_ROWS[kind]
    lines = [GOOD[i % 3] for i in range(20)] + ["", row, GOOD[0]]
    path = write_lines(tmp_path / "train.csv", lines)
    expect_data_error(path, row=22, field=field, message=message, block_bytes=32)


@pytest.mark.parametrize("block_bytes", [1 << 20, 16])
def test_skip_mode_drops_every_kind_of_bad_row_and_lists_it(
    tmp_path: Path, block_bytes: int
) -> None:
    lines = []
    for row, _, _ in BAD_ROWS.values():
        lines += [GOOD[0], row]
    lines += ["", GOOD[2]]
    path = write_lines(tmp_path / "train.csv", lines)
    got = read(path, on_bad_rows="skip", block_bytes=block_bytes)
    n_bad = len(BAD_ROWS)
    assert got.bad.tolist() == list(range(1, 2 * n_bad, 2))
    assert got.positions.tolist() == [*range(0, 2 * n_bad, 2), 2 * n_bad + 1]
    np.testing.assert_array_equal(got.x, [[0.5, 2, 3]] * n_bad + [[4, 5, 6]])
    assert got.end == len(lines)


def test_width_mismatch_in_a_later_file(tmp_path: Path) -> None:
    write_lines(tmp_path / "d" / "a.csv", GOOD)
    write_lines(tmp_path / "d" / "b.csv", ["1,2,3", "", "0,4,5"])
    expect_data_error(
        tmp_path / "d", file="b.csv", row=1, field=None, message="3 fields where the data has 4"
    )
    got = read(tmp_path / "d", on_bad_rows="skip")
    assert got.positions.tolist() == [0, 1, 2] and got.bad.tolist() == [3, 5]
    assert got.end == 6


def test_width_mismatch_in_a_later_chunk(tmp_path: Path) -> None:
    lines = [GOOD[i % 3] for i in range(30)]
    lines[25] = "1,2,3,4,5,6"
    path = write_lines(tmp_path / "d.csv", lines)
    expect_data_error(
        path, row=26, field=None, message="6 fields where the data has 4", block_bytes=20
    )


def test_n_features_given_fixes_the_width(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.csv", GOOD)
    assert read(path, n_features=3).x.shape == (3, 3)
    expect_data_error(path, n_features=4, row=1, field=None, message="where the data has 5")


# -- a header row with a named label column --------------------------------------------------


def test_header_with_the_label_column_in_the_middle(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.csv", ["a,y,b", "1,2,3", "", "4,5,6"])
    got = read(path, label_column="y")
    assert got.labels.tolist() == [2, 5]
    np.testing.assert_array_equal(got.x, [[1, 3], [4, 6]])
    assert got.positions.tolist() == [1, 3] and got.end == 4


def test_header_names_the_bad_column(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.csv", ["a,y,b", "1,2,3", "4,5,x"])
    expect_data_error(
        path, label_column="y", row=3, field="column 'b'", message="could not parse 'x'"
    )
    path = write_lines(tmp_path / "e.csv", ["a,y,b", "1,2,3", "4,,6"])
    expect_data_error(path, label_column="y", row=3, field="column 'y'", message="empty field")
    path = write_lines(tmp_path / "f.csv", ["a,y,b", "1,nan,3"])
    expect_data_error(
        path, label_column="y", row=2, field="column 'y'", message="missing or non-numeric label"
    )


def test_header_without_the_label_column_is_a_data_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.csv", ["a,y,b", "1,2,3"])
    expect_data_error(
        path, label_column="z", row=1, field=None, message="label column 'z' not in the header"
    )


def test_header_in_every_file_and_positions_across_files(tmp_path: Path) -> None:
    write_lines(tmp_path / "d" / "a.csv", ["y,x1,x2", "1,2,3", "0,4,5"])
    write_lines(tmp_path / "d" / "b.csv", ["x1,y,x2", "6,1,7"])  # columns in another order
    got = read(tmp_path / "d", label_column="y")
    assert got.labels.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(got.x, [[2, 3], [4, 5], [6, 7]])
    assert got.positions.tolist() == [1, 2, 4] and got.end == 5


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 5])
def test_skip_counts_header_lines(tmp_path: Path, k: int) -> None:
    write_lines(tmp_path / "d" / "a.csv", ["y,x1,x2", "1,2,3", "0,4,5"])
    write_lines(tmp_path / "d" / "b.csv", ["y,x1,x2", "1,6,7"])
    got = read(tmp_path / "d", label_column="y", skip=k)
    expected = [p for p in [1, 2, 4] if p >= k]
    assert [int(p) for c in got.chunks for p in c.positions] == expected


def test_header_with_labelled_false_makes_every_column_a_feature(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.csv", ["a,y,b", "1,2,3"])
    got = read(path, label_column="y", labelled=False)
    assert got.labels is None and got.x.tolist() == [[1, 2, 3]]


# -- resume ----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 3, 4, 5, 9, 12, 13])
def test_skip_with_blank_lines_and_bad_rows(tmp_path: Path, k: int) -> None:
    lines = [GOOD[0], "", GOOD[1], "1,x,2,3", GOOD[2], "", "", GOOD[0], "1,2", GOOD[1], "", GOOD[2]]
    path = write_lines(tmp_path / "d.csv", lines)
    full = read(path, on_bad_rows="skip", block_bytes=12)
    resumed = read(path, on_bad_rows="skip", block_bytes=12, skip=k)
    keep = full.positions >= k
    assert [int(p) for c in resumed.chunks for p in c.positions] == full.positions[keep].tolist()
    assert [int(p) for c in resumed.chunks for p in c.bad] == [p for p in full.bad if p >= k]
    if resumed.chunks:
        assert resumed.end == len(lines)
        np.testing.assert_array_equal(resumed.x, full.x[keep])


def test_writer_output_is_plain_sagemaker_csv(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    with open(path, "wb") as f:
        assert write_csv([read(write_lines(tmp_path / "in.csv", GOOD)).chunks[0].batch], f) == 3
    assert path.read_text().splitlines() == ["1,0.5,2,3", "0,1,-2,0.003", "1,4,5,6"]
