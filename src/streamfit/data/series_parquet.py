"""Series records from Parquet (:mod:`streamfit.data.series`): columns ``start`` (a string,
as in JSON Lines, or a timestamp or date, taken as written in UTC), ``target``
(``list<double>`` or any list of numbers; a null value is missing), and where the layout has
them ``cat`` (a list of integers) and ``dynamic_feat`` (a list of lists of numbers). Read
about ``block_bytes`` at a time; a record's number counts from 1 in its file.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamfit.core.calendar import period_indices
from streamfit.data.chunk import Chunk
from streamfit.data.native import arrow_file
from streamfit.data.series_columns import is_long
from streamfit.data.series_rows import read_long_parquet
from streamfit.data.series_windows import BadSeries, SeriesRules, WindowBuilder
from streamfit.data.text import ReadContext
from streamfit.errors import DataError

__all__ = ["read_series_parquet"]

START, TARGET, CAT, DYNAMIC = "start", "target", "cat", "dynamic_feat"


def read_series_parquet(stream: BinaryIO, ctx: ReadContext) -> Generator[Chunk, None, int]:
    """Windows of the series of a Parquet file; returns the number of windows."""
    builder = WindowBuilder(ctx, "record")
    file = ctx.checker.file
    native = arrow_file(stream)  # Arrow's threads only on a file it opened (:mod:`.native`)
    try:
        try:
            pf = pq.ParquetFile(native or stream, buffer_size=ctx.block_bytes, pre_buffer=False)
            schema = pf.schema_arrow
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            raise DataError(f"not a readable Parquet file ({exc})", source=file) from exc
        meta = pf.metadata
        first = meta.row_group(0) if meta.num_row_groups else None
        row_bytes = first.total_byte_size // max(first.num_rows, 1) if first is not None else 1
        batch_size = max(64, ctx.block_bytes // max(row_bytes, 1))
        if is_long(schema.names):  # rows of series that arrive in pieces
            return (yield from read_long_parquet(pf, ctx, batch_size, native is not None))
        columns = _columns(schema, builder.rules, file)
        batches = pf.iter_batches(
            batch_size=batch_size,
            columns=columns,
            use_threads=native is not None,
        )
        row = 0
        while (batch := _next(batches, file)) is not None:
            yield from _records(batch, row, builder)
            row += batch.num_rows
            chunk = builder.flush()
            if chunk is not None:
                yield chunk
    finally:
        if native is not None:
            native.close()
    return builder.seen


def _columns(schema: pa.Schema, rules: SeriesRules, file: str) -> list[str]:
    """The columns to read, each checked to be of a type that holds its field."""
    names = [START, TARGET]
    if rules.layout.cat:
        names.append(CAT)
    if rules.layout.dynamic:
        names.append(DYNAMIC)
    for name in names:
        if name not in schema.names:
            raise DataError(f"no column {name!r} among {schema.names}", source=file)
        kind = schema.field(name).type
        depth = 2 if name == DYNAMIC else 1 if name != START else 0
        inner = kind
        for _ in range(depth):
            inner = inner.value_type if _is_list(inner) else None
            if inner is None:
                break
        if name == START:
            ok = pa.types.is_string(kind) or pa.types.is_large_string(kind)
            ok = ok or pa.types.is_timestamp(kind) or pa.types.is_date(kind)
        else:
            ok = inner is not None and (
                pa.types.is_integer(inner) or pa.types.is_floating(inner) or pa.types.is_null(inner)
            )
        if not ok:
            want = {START: "strings or timestamps", DYNAMIC: "lists of lists of numbers"}
            raise DataError(
                f"column {name!r} is {kind}, not {want.get(name, 'lists of numbers')}",
                source=file,
            )
    return names


def _is_list(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    )


def _next(batches: object, file: str) -> pa.RecordBatch | None:
    try:
        return next(batches, None)  # type: ignore[call-overload]
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"unreadable data ({exc})", source=file) from exc


def _records(
    batch: pa.RecordBatch, row: int, builder: WindowBuilder
) -> Generator[Chunk, None, None]:
    rules = builder.rules
    starts = _starts(batch.column(START), rules)
    t_offsets, t_values, t_null = _lists(batch.column(TARGET))
    if rules.layout.cat:
        c_offsets, c_values, c_null = _lists(batch.column(CAT))
    if rules.layout.dynamic:
        d_offsets, d_null = _offsets(batch.column(DYNAMIC))
        r_offsets, r_values, _ = _lists(batch.column(DYNAMIC).values)
    for i in range(batch.num_rows):
        number = row + i + 1
        try:
            start = starts[i]
            if isinstance(start, BadSeries):
                raise start
            if t_null[i]:
                raise BadSeries(TARGET, "missing")
            target = t_values[t_offsets[i] : t_offsets[i + 1]]
            cat = None
            if rules.layout.cat and not c_null[i]:
                cat = c_values[c_offsets[i] : c_offsets[i + 1]]
            dynamic: list[np.ndarray] = []
            if rules.layout.dynamic:
                if d_null[i]:
                    raise BadSeries(DYNAMIC, f"missing: the model has {rules.layout.dynamic}")
                dynamic = [
                    r_values[r_offsets[j] : r_offsets[j + 1]]
                    for j in range(d_offsets[i], d_offsets[i + 1])
                ]
            series = rules.series(start, target, cat, dynamic)
        except BadSeries as bad:
            builder.reject(number, bad)
            continue
        yield from builder.add(series)


def _starts(column: pa.Array, rules: SeriesRules) -> list[int | BadSeries]:
    """Each record's start period, or why it has none."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        out: list[int | BadSeries] = []
        for text in column.to_pylist():
            try:
                out.append(rules.start_period(text))
            except BadSeries as bad:
                out.append(bad)
        return out
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    unit = "D" if pa.types.is_date32(kind) else "ms" if pa.types.is_date64(kind) else kind.unit
    ticks = pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    periods = period_indices(rules.freq, ticks.astype(f"datetime64[{unit}]")).tolist()
    missing = BadSeries(START, "missing")
    return [missing if null else int(p) for p, null in zip(periods, nulls, strict=True)]


def _offsets(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Where each record's list starts and ends in the column's values, and its nulls."""
    nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_fixed_size_list(column.type):
        size = column.type.list_size
        offsets = (column.offset + np.arange(len(column) + 1, dtype=np.int64)) * size
    else:
        offsets = np.asarray(column.offsets.to_numpy(), dtype=np.int64)
    return offsets, nulls


def _lists(column: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(offsets, values, nulls)`` of a list column of numbers: each record's values are
    ``values[offsets[i]:offsets[i + 1]]``, float64 with NaN where null."""
    offsets, nulls = _offsets(column)
    child = column.values
    if pa.types.is_null(child.type):
        return offsets, np.full(len(child), np.nan), nulls
    as_float = pc.fill_null(pc.cast(child, pa.float64()), np.nan)
    return offsets, np.asarray(as_float.to_numpy(zero_copy_only=False)), nulls
