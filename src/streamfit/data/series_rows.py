"""Readers of long-format series rows (:mod:`streamfit.data.series_long`): CSV with a header,
Parquet with an ``item_id`` column, and the rows of a SQL query. Each hands its rows, a
block at a time, to the read's :class:`~streamfit.data.series_long.SeriesTable`; a row's
number (``row N``) counts the data rows of its file from 1, the header left out.

>>> import io, json
>>> from streamfit.core.windows import SeriesReading, WindowLayout
>>> from streamfit.data.checks import RowChecker
>>> from streamfit.data.series_long import NOT_FOR_FORECASTS, SeriesTable
>>> from streamfit.data.text import ReadContext
>>> reading = SeriesReading("D", WindowLayout(history=1, context=2, prediction=1, time_features=4))
>>> text = b"item_id,timestamp,target\\nA,2024-01-01,1\\nA,2024-01-02,2\\nA,2024-01-03,3\\n"
>>> ctx = ReadContext(RowChecker(labelled=False), 0, series=reading,
...                   series_table=SeriesTable(reading))
>>> [chunk.positions.tolist() for chunk in read_long_csv(io.BytesIO(text), ctx)]
[[0, 1]]
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterator, Sequence
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.series_columns import long_columns
from streamfit.data.series_long import NOT_FOR_FORECASTS, SeriesTable
from streamfit.data.text import ReadContext, line_blocks
from streamfit.errors import ConfigError, DataError

__all__ = ["long_table", "read_long_csv", "read_long_parquet", "read_long_sql"]


def long_table(ctx: ReadContext) -> SeriesTable:
    """The read's table, its row count set to this file's first position."""
    table = ctx.series_table
    if not isinstance(table, SeriesTable):
        raise ConfigError(f"{ctx.checker.file}: {NOT_FOR_FORECASTS}")
    if ctx.stop is not None:
        raise ConfigError(f"{ctx.checker.file}: series cannot be read as a range of rows")
    table.rows = ctx.offset
    return table


def _check_columns(names: Sequence[str], needed: list[str], file: str) -> None:
    missing = [c for c in needed if c not in names]
    if missing:
        raise DataError(
            f"long-format series rows need the columns {', '.join(needed)}; no "
            f"{', '.join(missing)} among {', '.join(map(str, names))}",
            source=file,
        )


def read_long_csv(stream: BinaryIO, ctx: ReadContext) -> Generator[Chunk, None, int]:
    """The windows of long-format rows in a CSV file with a header; returns its rows."""
    table = long_table(ctx)
    file = ctx.checker.file
    needed = long_columns(table.reading)
    skip = ctx.offset + ctx.skip
    names: list[str] | None = None
    bad: list[tuple[int, str]] = []

    def invalid(row: Any) -> str:
        bad.append(
            (row.number, f"{row.actual_columns} fields where the header has {len(names or [])}")
        )
        return "skip"

    rows = 0  # rows of the file before this block
    for lines, _first, _n in line_blocks(stream, 0, ctx.block_bytes):
        block = lines
        if names is None:
            header, _, block = lines.partition(b"\n")
            text = header.decode("utf-8-sig", errors="replace")
            names = [c.strip() for c in next(csv.reader([text]), [])]
            _check_columns(names, needed, file)
            if not block.strip():
                continue
        try:
            parsed = pacsv.read_csv(
                pa.py_buffer(block),
                read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
                parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in needed},
                    include_columns=needed,
                    strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as exc:
            raise DataError(f"unreadable CSV ({exc})", source=file) from exc
        # A row of the wrong width is skipped by the parser; it still counts as a row,
        # so that positions and row numbers stay those of the file.
        done = at = 0  # rows of the block passed (bad ones too), and parsed rows of them
        for number, message in bad:
            if rows + number > ctx.skip:
                ctx.checker.report(
                    DataError(message, source=file, row=rows + number, row_label="row")
                )
            good = number - 1 - done
            yield from table.add(parsed.slice(at, good), ctx.checker, skip, rows + done)
            at, done = at + good, done + good + 1
            table.reject(skip)
        bad.clear()
        yield from table.add(parsed.slice(at), ctx.checker, skip, rows + done)
        rows += done + parsed.num_rows - at
    if names is None:
        raise DataError("empty: no header of long-format series rows", source=file)
    return rows


def read_long_parquet(
    pf: pq.ParquetFile, ctx: ReadContext, batch_size: int, use_threads: bool
) -> Generator[Chunk, None, int]:
    """The windows of long-format rows in an open Parquet file; returns its rows."""
    table = long_table(ctx)
    file = ctx.checker.file
    needed = long_columns(table.reading)
    _check_columns(pf.schema_arrow.names, needed, file)
    skip = ctx.offset + ctx.skip
    rows = 0
    batches = pf.iter_batches(batch_size=batch_size, columns=needed, use_threads=use_threads)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"unreadable data ({exc})", source=file) from exc
        if batch is None:
            return rows
        yield from table.add(pa.Table.from_batches([batch]), ctx.checker, skip, rows)
        rows += batch.num_rows


def read_long_sql(
    names: list[str],
    partitions: Iterator[Sequence[Sequence[Any]]],
    table: SeriesTable,
    checker: RowChecker,
    skip: int,
) -> Iterator[Chunk]:
    """The windows of long-format rows fetched from a query (its columns ``names``), a
    partition at a time; rows before ``skip`` are folded into the table only."""
    needed = long_columns(table.reading)
    _check_columns(names, needed, checker.file)
    index = [names.index(c) for c in needed]
    table.rows = 0
    for part in partitions:
        columns = {c: _column([row[j] for row in part]) for c, j in zip(needed, index, strict=True)}
        yield from table.add(pa.table(columns), checker, skip, table.rows)
    yield from table.finish(checker)


def _column(values: list[Any]) -> pa.Array:
    """Values a driver returned, as Arrow infers them (text where their types are mixed)."""
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
