"""The compiled libsvm scan: where it accepts a block, it gives exactly what the line-by-line
reader gives (same rows, positions, indices and float32 values to the bit); anything else it
leaves to that reader."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfit.data.checks import RowChecker
from streamfit.data.chunk import labels_array, sparse_arrays
from streamfit.data.libsvm import _EXTRAS, _parse_slow
from streamfit.data.libsvm_scan import scan
from streamfit.data.text import ReadContext
from streamfit.data.writers import write
from tests.data.conftest import sparse_batch

FUZZ = settings(
    max_examples=int(os.environ.get("STREAMFIT_FUZZ_EXAMPLES", "150")),
    deadline=5000,
    database=None,
)

# Numbers the scan reads itself, and tokens it must leave to the slow reader (or that the
# slow reader ignores: comments, qid).
COMMON = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.decimals(-(10**6), 10**6, places=6).map(str),
    st.sampled_from(["1.", ".5", "-.5", "+3", "1e5", "2E-3", "-0", "0.000001", "1e22", "5e-22"]),
)
# Any double's shortest repr: most are of the common form, those of 17 digits are not.
NUMBERS = st.one_of(
    COMMON,
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
ODD = st.sampled_from(
    [
        "nan", "inf", "1_0", "1e400", "0x10", "12345678901234567890", "1e", ".", "-", "",
        "1:2:3", "3 :1", "qid:", "1.5:2", "--1", "1e99999", "\u00a0", "\x1c",
    ]
)  # fmt: skip


def _token(index: int, value: str) -> str:
    return f"{index}:{value}"


@st.composite
def blocks(draw: st.DrawFn, odd: bool) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["row", "row", "row", "blank", "comment"]))
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", "  ", "\t", " \r"])))
            continue
        if kind == "comment":
            lines.append("# " + draw(st.text("ab 1:2", max_size=6)))
            continue
        numbers = NUMBERS if odd else COMMON
        tokens = [draw(numbers)]
        for _ in range(draw(st.integers(0, 5))):
            what = draw(
                st.sampled_from(["pair", "pair", "pair", "qid", "odd"] if odd else ["pair"])
            )
            if what == "pair":
                tokens.append(_token(draw(st.integers(0, 2**40)), draw(numbers)))
            elif what == "qid":
                tokens.append(f"qid:{draw(st.integers(0, 9))}")
            else:
                tokens.append(draw(ODD))
        space = draw(st.sampled_from([" ", "  ", "\t"]))
        tail = draw(st.sampled_from(["", " ", " # note", "\r"])) if odd else ""
        lines.append(space.join(tokens) + tail)
    ending = draw(st.sampled_from(["\n", ""])) if lines else ""
    return ("\n".join(lines) + ending).encode()


def _slow(block: bytes) -> tuple[np.ndarray, ...] | None:
    """What the line-by-line reader makes of ``block`` (None: it finds a bad line)."""
    checker = RowChecker(labelled=True, on_bad_rows="skip")
    chunk = _parse_slow(_EXTRAS.sub(b"", block), 0, 0, ReadContext(checker=checker, offset=0))
    if chunk.bad.size:
        return None
    labels = labels_array(chunk.batch)
    assert labels is not None
    return (labels, chunk.positions, *sparse_arrays(chunk.batch))


def _same(got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> None:
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype
        bits = np.uint32 if a.dtype == np.float32 else a.dtype  # floats to the bit
        np.testing.assert_array_equal(a.view(bits), b.view(bits))


@FUZZ
@given(blocks(odd=False))
def test_common_blocks_are_scanned_as_the_slow_reader_reads_them(block: bytes) -> None:
    got = scan(block)
    want = _slow(block)
    assert got is not None and want is not None, block
    _same(got, want)


@FUZZ
@given(blocks(odd=True))
def test_a_block_the_scan_accepts_is_read_as_the_slow_reader_reads_it(block: bytes) -> None:
    got = scan(block)
    if got is not None:
        want = _slow(block)
        assert want is not None, block  # the scan took a block with a bad line
        _same(got, want)


@pytest.mark.parametrize(
    "line",
    ["1 3:nan", "1 3:1_0", "1 2:3:4", "1 3 :1", "1 qid: 2:1", "1 3:0x1", "1 1e400:1",
     "1 3:1e-400", "1 3:12345678901234567890", "1 -:1", "1 3:\u00a01", "\u00a0"],
)  # fmt: skip
def test_anything_but_the_common_form_is_left_to_the_slow_reader(line: str) -> None:
    assert scan((line + "\n").encode()) is None


def test_the_writers_files_take_the_scan(tmp_path: object) -> None:
    out = io.BytesIO()
    write("libsvm", [sparse_batch(200, d=1 << 20, nnz=8)], out, 1 << 20)
    got = scan(out.getvalue())
    assert got is not None
    _same(got, _slow(out.getvalue()))  # type: ignore[arg-type]


def test_a_block_of_blank_lines_and_comments_has_no_rows() -> None:
    labels, lines, indptr, indices, values = scan(b"\n  \n# only a comment\n")  # type: ignore[misc]
    assert len(labels) == len(lines) == len(indices) == len(values) == 0
    assert indptr.tolist() == [0]
