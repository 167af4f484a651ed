"""CSV: SageMaker's convention (no header, label in the first column; unlabelled data has no
label column), or a header row when a label column is named.

Blocks of whole lines are parsed by pyarrow (multi-threaded); a block that pyarrow rejects is
parsed again line by line, only to name the bad line and field, or to skip its bad rows.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from streamfit.data.chunk import Chunk
from streamfit.data.native import arrow_bytes
from streamfit.data.schema import Schema
from streamfit.data.text import ReadContext, parse_blocks, record_lines
from streamfit.errors import DataError

__all__ = ["read_csv"]


class _Layout:
    """Which column is the label and what each column is called."""

    def __init__(
        self,
        names: list[str],
        label_index: int | None,
        header: bool,
        feature_index: list[int] | None = None,
    ) -> None:
        self.names = names
        self.label_index = label_index
        self.header = header
        self.feature_index = (
            [i for i in range(len(names)) if i != label_index]
            if feature_index is None
            else feature_index
        )

    def field(self, column: int) -> str:
        if self.header:
            return f"column {self.names[column]!r}"
        return f"column {column + 1}"

    def feature_field(self, j: int) -> str:
        return self.field(self.feature_index[j])


def _header_layout(line: bytes, ctx: ReadContext) -> _Layout:
    text = line.decode("utf-8-sig", errors="replace")
    names = [c.strip().strip('"') for c in text.rstrip("\r\n").split(",")]
    label_index = None
    if ctx.checker.labelled:
        if ctx.label_column not in names:
            raise DataError(
                f"label column {ctx.label_column!r} not in the header {names}",
                source=ctx.checker.file,
                row=1,
            )
        label_index = names.index(str(ctx.label_column))
    # Features by name, in the channel's order (see streamfit.data.schema); a label the
    # channel named before is no feature even where this read has no labels.
    checker = ctx.checker
    not_features = {names[label_index] if label_index is not None else None}
    if checker.columns is not None:
        not_features.add(checker.columns.label)
    fields = [(n, pa.float32()) for n in names if n not in not_features]
    found = Schema.of(fields, None if label_index is None else names[label_index])
    order = checker.match_columns(found)
    return _Layout(names, label_index, header=True, feature_index=[names.index(n) for n in order])


def _plain_layout(first_line: bytes, ctx: ReadContext) -> _Layout:
    checker = ctx.checker
    if checker.n_features is not None:
        width = checker.n_features + (1 if checker.labelled else 0)
    else:
        width = first_line.count(b",") + 1
    names = [f"c{i}" for i in range(width)]
    return _Layout(names, 0 if checker.labelled else None, header=False)


def read_csv(stream: BinaryIO, ctx: ReadContext) -> Generator[Chunk, None, int]:
    """Yield chunks of a CSV stream; returns the number of lines read."""
    checker = ctx.checker
    checker.enter(checker.file, ctx.offset, "line")
    layout: _Layout | None = None
    first = 0
    skip = ctx.skip
    if ctx.label_column is not None:
        header = stream.readline()
        if not header:
            return 0
        layout = _header_layout(header, ctx)
        first, skip = 1, max(0, skip - 1)

    def parse(block: bytes, start: int, end: int) -> Chunk | None:
        nonlocal layout
        if layout is None:
            stripped = block.lstrip()
            if not stripped:
                return None  # blank lines only: no row to take the width from yet
            layout = _plain_layout(stripped[: stripped.find(b"\n")], ctx)
        checker.fix_width(len(layout.feature_index), start)
        return _parse_block(block, start, end, layout, ctx)

    return (yield from parse_blocks(stream, ctx, parse, skip, first))


def _parse_block(block: bytes, start: int, end: int, layout: _Layout, ctx: ReadContext) -> Chunk:
    table = _parse_fast(block, layout)  # pyarrow passes over empty lines
    if table is None:
        return _parse_slow(block, start, end, layout, ctx)
    if table.num_rows == end - start:  # one row a line: no blank lines to account for
        positions = start + np.arange(table.num_rows)
    else:
        records = record_lines(block)
        positions = start + (records[1] if records is not None else np.arange(table.num_rows))
        if len(positions) != table.num_rows:
            return _parse_slow(block, start, end, layout, ctx)
    x = np.empty((table.num_rows, len(layout.feature_index)), dtype=np.float32)
    for j, col in enumerate(layout.feature_index):
        x[:, j] = table.column(col).to_numpy(zero_copy_only=False)
    labels = None
    if layout.label_index is not None:
        labels = table.column(layout.label_index).to_numpy(zero_copy_only=False)
        labels = np.asarray(labels, dtype=np.float32)
    return ctx.checker.dense(
        x,
        labels,
        positions.astype(np.int64),
        end,
        field_name=layout.feature_field,
        label_name=layout.field(layout.label_index or 0),
    )


def _parse_fast(data: bytes, layout: _Layout) -> pa.Table | None:
    """Parse with pyarrow; None when any row is malformed (the slow path then names it).

    A row of another width fails the whole parse, as a bad number does: no Python
    ``invalid_row_handler``, which Arrow's threads would hold (see :mod:`.native`)."""
    try:
        table = pacsv.read_csv(
            arrow_bytes(data),
            read_options=pacsv.ReadOptions(column_names=layout.names, block_size=1 << 20),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(layout.names, pa.float32())
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    for column in table.columns:  # empty fields come back as nulls: the slow path names them
        if column.null_count:
            return None
    return table


def _parse_slow(block: bytes, start: int, end: int, layout: _Layout, ctx: ReadContext) -> Chunk:
    checker = ctx.checker
    width = len(layout.names)
    rows: list[list[float]] = []
    labels: list[float] = []
    positions: list[int] = []
    bad: list[int] = []
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, raw in enumerate(lines):
        pos = start + i
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        fields = [f.strip().strip('"') for f in text.split(",")]
        if len(fields) != width:
            checker.bad(pos, None, f"{len(fields)} fields where the data has {width}")
            bad.append(pos)
            continue
        values: list[float] = []
        problem: tuple[str, str] | None = None
        for col, value in enumerate(fields):
            if value == "":
                problem = (layout.field(col), "empty field")
                break
            try:
                values.append(float(value))
            except ValueError:
                problem = (layout.field(col), f"could not parse {value!r} as a number")
                break
        if problem is not None:
            checker.bad(pos, problem[0], problem[1])
            bad.append(pos)
            continue
        if layout.label_index is not None:
            labels.append(values[layout.label_index])
        rows.append([values[c] for c in layout.feature_index])
        positions.append(pos)
    x = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(layout.feature_index))
    y = np.asarray(labels, dtype=np.float32) if layout.label_index is not None else None
    return checker.dense(
        x,
        y,
        np.asarray(positions, dtype=np.int64),
        end,
        bad,
        field_name=layout.feature_field,
        label_name=layout.field(layout.label_index or 0),
    )
