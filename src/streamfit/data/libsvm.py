"""libsvm / svmlight: ``label index:value index:value ...`` per line, sparse.

Indices are used as written (a file with 1-based indices leaves column 0 empty), so
``feature_dim`` must exceed the largest index. ``qid:`` tokens and ``#`` comments are ignored.

A block is parsed by a compiled scan of its bytes (:mod:`.libsvm_scan`) where it holds only
the common form. Else the block is turned into one ``index:value`` pair per line, with each
row's label rewritten as the pair ``-1:label``, and pyarrow's CSV parser converts every number
at C speed; row boundaries are where the index is -1. A block that too rejects is read again
line by line to name the bad line and field.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from streamfit.data.chunk import Chunk
from streamfit.data.native import arrow_bytes
from streamfit.data.text import ReadContext, parse_blocks, record_lines

__all__ = ["read_libsvm"]

_TO_LINES = bytes.maketrans(b" \t", b"\n\n")
_EXTRAS = re.compile(rb"#.*$|\bqid:\S+", re.MULTILINE)
_MARK = -1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def read_libsvm(stream: BinaryIO, ctx: ReadContext) -> Generator[Chunk, None, int]:
    """Yield sparse chunks of a libsvm stream; returns the number of lines read."""
    ctx.checker.enter(ctx.checker.file, ctx.offset, "line")
    return (
        yield from parse_blocks(
            stream, ctx, lambda block, start, end: _parse_block(block, start, end, ctx), ctx.skip
        )
    )


def _parse_block(block: bytes, start: int, end: int, ctx: ReadContext) -> Chunk:
    # Imported here: numba's import is paid by the reads of libsvm only.
    from streamfit.data.libsvm_scan import scan

    scanned = scan(block)
    if scanned is not None:
        labels, rows, indptr, indices, values = scanned
        return ctx.checker.sparse(
            indptr, indices, values, labels if ctx.checker.labelled else None, start + rows, end
        )
    if b"#" in block or b"qid:" in block:
        block = _EXTRAS.sub(b"", block)
    records = record_lines(block)
    lines = b"\n".join(records[0]) if records is not None else block.rstrip(b"\n")
    parsed = _parse_fast(lines)
    if parsed is None:
        return _parse_slow(block, start, end, ctx)
    labels, indptr, indices, values = parsed
    n = len(labels)
    positions = start + (np.arange(n) if records is None else records[1])
    return ctx.checker.sparse(
        indptr,
        indices,
        values,
        labels if ctx.checker.labelled else None,
        positions.astype(np.int64),
        end,
    )


def _parse_fast(lines: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    if not lines:
        return None
    data = (b"-1:" + lines.replace(b"\n", b"\n-1:")).translate(_TO_LINES)
    if b"\n\n" in data:  # runs of spaces: empty tokens
        data = re.sub(rb"\n+", b"\n", data)
    try:
        table = pacsv.read_csv(
            arrow_bytes(data),
            read_options=pacsv.ReadOptions(column_names=["i", "v"], block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter=":", quote_char=False),
            convert_options=pacsv.ConvertOptions(column_types={"i": pa.int64(), "v": pa.float32()}),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.column(0).null_count or table.column(1).null_count:
        return None
    ind = table.column(0).to_numpy()
    val = table.column(1).to_numpy()
    marks = np.flatnonzero(ind == _MARK)
    if len(marks) != lines.count(b"\n") + 1:  # a negative index in the data: let the slow path say
        return None
    keep = ind != _MARK
    indices = ind[keep]
    indptr = np.empty(len(marks) + 1, dtype=np.int64)
    indptr[:-1] = marks - np.arange(len(marks))
    indptr[-1] = len(indices)
    return val[marks].astype(np.float32), indptr, indices, val[keep].astype(np.float32)


def _parse_slow(block: bytes, start: int, end: int, ctx: ReadContext) -> Chunk:
    checker = ctx.checker
    labels: list[float] = []
    positions: list[int] = []
    bad: list[int] = []
    indptr, indices, values = [0], [], []
    for i, raw in enumerate(block.split(b"\n")):
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        pos = start + i
        tokens = text.split()
        try:
            field = "label"
            label = float(tokens[0])
            row_idx, row_val = [], []
            for token in tokens[1:]:
                field = f"token {token!r}"
                key, sep, value = token.partition(":")
                if not sep:
                    raise ValueError("expected index:value")
                index = int(key)
                if not _INT64_MIN <= index <= _INT64_MAX:
                    raise ValueError("index beyond 64 bits")
                row_idx.append(index)
                row_val.append(float(value))
        except ValueError as exc:
            known = str(exc).startswith(("expected", "index"))
            checker.bad(pos, field, str(exc) if known else "not a number")
            bad.append(pos)
            continue
        labels.append(label)
        positions.append(pos)
        indices.extend(row_idx)
        values.extend(row_val)
        indptr.append(len(indices))
    return checker.sparse(
        np.asarray(indptr, dtype=np.int64),
        np.asarray(indices, dtype=np.int64),
        np.asarray(values, dtype=np.float32),
        np.asarray(labels, dtype=np.float32) if checker.labelled else None,
        np.asarray(positions, dtype=np.int64),
        end,
        bad,
    )
