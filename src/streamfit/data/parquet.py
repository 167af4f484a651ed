"""Parquet: one row group at a time, so memory is bounded by the row group, not the file.

Three layouts are understood: a ``features`` list column (dense), ``indices`` + ``values`` list
columns (sparse), or plain numeric columns (the label is ``label`` or the named label column,
every other numeric column is a feature, in order). With the hashing trick on
(``hash_features``), string columns are features too: each row becomes a sparse row of
``column=value`` and ``column`` features folded into the hash space.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamfit.data.chunk import FEATURES, INDICES, LABEL, VALUES, Chunk, float_values, list_values
from streamfit.data.hashing import categorical_rows
from streamfit.data.native import arrow_file
from streamfit.data.schema import NUMBER, Schema, kind_of
from streamfit.data.text import ReadContext
from streamfit.errors import DataError

__all__ = ["read_parquet"]


def read_parquet(stream: BinaryIO, ctx: ReadContext) -> Generator[Chunk, None, int]:
    """Yield chunks of a Parquet file, a row group at a time; returns its row count."""
    checker = ctx.checker
    checker.enter(checker.file, ctx.offset, "row")
    # Arrow's threads decode columns only from a file Arrow opened itself (see :mod:`.native`).
    native = arrow_file(stream)
    try:
        # Streamed reads of column chunks: without them a whole row group is buffered (and
        # read_row_group held twice that), which set the peak memory of every job.
        pf = pq.ParquetFile(native or stream, buffer_size=ctx.block_bytes, pre_buffer=False)
        pf.schema_arrow.names  # noqa: B018 - decodes the names: a corrupt one fails here
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        if native is not None:
            native.close()
        raise DataError(f"not a readable Parquet file ({_why(exc)})", source=checker.file) from exc
    try:
        return (yield from _read(pf, ctx, threads=native is not None))
    finally:
        if native is not None:
            native.close()


def _read(pf: pq.ParquetFile, ctx: ReadContext, *, threads: bool) -> Generator[Chunk, None, int]:
    checker = ctx.checker
    schema = pf.schema_arrow
    names = schema.names
    label = ctx.label_column or LABEL
    has_label = checker.labelled and label in names
    if checker.labelled and not has_label:
        raise DataError(
            f"no label column {label!r} among {names}; name it with --label-column",
            source=checker.file,
        )
    if has_label:
        _expect(schema, label, NUMBER, "label column", checker.file)
    feature_names: list[str] = []
    if FEATURES in names:
        kind = "dense-list"
        _expect(schema, FEATURES, NUMBER, "column", checker.file, lists=True)
    elif INDICES in names:
        kind = "sparse"
        _expect(schema, INDICES, NUMBER, "column", checker.file, lists=True)
        if VALUES in names:
            _expect(schema, VALUES, NUMBER, "column", checker.file, lists=True)
    else:
        kind = "hashed-columns" if checker.hash_space is not None else "columns"
        # A label the channel named before is no feature even where this read has no labels.
        not_features = {label, checker.columns.label if checker.columns is not None else None}
        fields = [(f.name, f.type) for f in schema if f.name not in not_features]
        found = Schema.of(fields, label if has_label else None)
        feature_names = checker.match_columns(found)
        if not feature_names:
            raise DataError(f"no feature columns among {names}", source=checker.file)
    start = 0
    for rows, piece in _pieces(pf, ctx, threads):
        if piece is None or start + rows <= ctx.skip:
            start += rows
            continue
        table = piece
        if ctx.stop is not None and start + table.num_rows > ctx.stop:
            table = table.slice(0, max(0, ctx.stop - start))
        if start < ctx.skip:
            table = table.slice(ctx.skip - start)
            start = ctx.skip
        base = ctx.offset + start
        positions = base + np.arange(table.num_rows, dtype=np.int64)
        end = base + table.num_rows
        labels = float_values(table.column(label)) if has_label else None
        if kind == "columns":
            checker.fix_width(len(feature_names), base)
            x = np.empty((table.num_rows, len(feature_names)), dtype=np.float32)
            for j, name in enumerate(feature_names):
                x[:, j] = float_values(table.column(name))
            yield checker.dense(
                x,
                labels,
                positions,
                end,
                field_name=lambda j: f"column {feature_names[j]!r}",
                label_name=label,
            )
        elif kind == "hashed-columns":
            assert checker.hash_space is not None
            indptr, indices, values = categorical_rows(table, feature_names, checker.hash_space)
            # Already in the space: hashing them again would move them.
            yield checker.sparse(
                indptr, indices, values, labels, positions, end, label_name=label, hashed=True
            )
        elif kind == "dense-list":
            yield _dense_list(table, labels, positions, end, ctx)
        else:
            yield _sparse(table, labels, positions, end, ctx)
        start += table.num_rows
    return int(pf.metadata.num_rows)


def _expect(
    schema: pa.Schema, name: str, kind: str, what: str, file: str, *, lists: bool = False
) -> None:
    """Column ``name`` holds numbers (``lists``: lists of them), else a :class:`DataError`
    naming it: it could not be converted to float32."""
    column = schema.field(name).type
    inner = column
    if lists:
        listed = (
            pa.types.is_list(column)
            or pa.types.is_large_list(column)
            or pa.types.is_fixed_size_list(column)
        )
        inner = column.value_type if listed else None
    if inner is None or kind_of(inner) != kind:
        want = "lists of numbers" if lists else "numbers"
        raise DataError(f"{what} {name!r} is {column}, not {want}", source=file)


def _pieces(
    pf: pq.ParquetFile, ctx: ReadContext, threads: bool
) -> Iterator[tuple[int, pa.Table | None]]:
    """``(rows, table)`` pieces of about ``ctx.block_bytes`` decoded, a row group at a time,
    so that memory follows the block size rather than whatever row groups the writer chose.
    A row group wholly before ``ctx.skip`` comes as ``(rows, None)``, known from the metadata
    and never read."""
    start = 0
    for group in range(pf.num_row_groups):
        meta = pf.metadata.row_group(group)
        if start + meta.num_rows <= ctx.skip:
            yield meta.num_rows, None
        else:
            row_bytes = max(1, meta.total_byte_size // max(meta.num_rows, 1))
            piece = max(1024, ctx.block_bytes // row_bytes)
            at = start
            batches = pf.iter_batches(batch_size=piece, row_groups=[group], use_threads=threads)
            while (batch := _next(batches, ctx, group)) is not None:
                if ctx.stop is not None and at >= ctx.stop:
                    return  # the end of a shard's row range: later groups are never read
                yield batch.num_rows, pa.Table.from_batches([batch])
                at += batch.num_rows
        start += meta.num_rows


def _next(batches: Iterator[pa.RecordBatch], ctx: ReadContext, group: int) -> pa.RecordBatch | None:
    """The next decoded batch; a corrupt page is a :class:`DataError` naming its row group."""
    try:
        return next(batches, None)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        where = f"row group {group + 1}"
        raise DataError(
            f"unreadable data in {where} ({_why(exc)})", source=ctx.checker.file
        ) from exc


def _why(exc: Exception) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _dense_list(
    table: pa.Table, labels: np.ndarray | None, positions: np.ndarray, end: int, ctx: ReadContext
) -> Chunk:
    checker = ctx.checker
    offsets, flat, nulls = list_values(table.column(FEATURES))
    lengths = np.diff(offsets)
    if checker.n_features is None and not nulls.all():  # else a wrong width is a bad row
        checker.fix_width(int(lengths[~nulls][0]), int(positions[~nulls][0]))
    width = checker.n_features
    wrong = (lengths != width) | nulls
    bad: list[int] = []
    if wrong.any():
        for i in np.flatnonzero(wrong):
            checker.bad(
                int(positions[i]), FEATURES, f"{lengths[i]} features where the data has {width}"
            )
            bad.append(int(positions[i]))
        keep = np.flatnonzero(~wrong)
        flat = (
            np.concatenate([flat[offsets[i] : offsets[i + 1]] for i in keep])
            if len(keep)
            else flat[:0]
        )
        positions = positions[keep]
        labels = None if labels is None else labels[keep]
    x = flat.reshape(len(positions), int(width or 0))
    return checker.dense(
        x,
        labels,
        positions,
        end,
        bad,
        field_name=lambda j: f"{FEATURES}[{j}]",
        label_name=ctx.label_column or LABEL,
    )


def _sparse(
    table: pa.Table, labels: np.ndarray | None, positions: np.ndarray, end: int, ctx: ReadContext
) -> Chunk:
    offsets, flat_idx = _list_parts(table.column(INDICES))
    indices = _numbers(flat_idx, pa.int64(), -1)  # a null index is a bad one: it names the row
    if VALUES in table.column_names:
        voffsets, flat_val = _list_parts(table.column(VALUES))
        if not np.array_equal(voffsets, offsets):
            rows = np.flatnonzero(np.diff(voffsets) != np.diff(offsets))
            raise ctx.checker.error(
                int(positions[rows[0]]), VALUES, "indices and values differ in length"
            )
        values = _numbers(flat_val, pa.float32(), np.nan)
    else:
        values = np.ones(len(indices), dtype=np.float32)
    return ctx.checker.sparse(
        offsets, indices, values, labels, positions, end, label_name=ctx.label_column or LABEL
    )


def _list_parts(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """A list column's row offsets (from 0, int64) and the child values they index, taken from
    Arrow's buffers: no per-row work, and no copy of the values (a slice, a chunk of a larger
    array, starts its offsets anywhere). A null list is an empty row."""
    arr = column.combine_chunks()  # one chunk, as a row-group piece has: itself, no copy
    if pa.types.is_fixed_size_list(arr.type):
        size = arr.type.list_size
        offsets = np.arange(len(arr) + 1, dtype=np.int64) * size
        return offsets, arr.values.slice(arr.offset * size, len(arr) * size)
    raw = arr.offsets.to_numpy()
    first = int(raw[0])
    return raw.astype(np.int64) - first, arr.values.slice(first, int(raw[-1]) - first)


def _numbers(flat: pa.Array, kind: pa.DataType, null: float) -> np.ndarray:
    """``flat`` as numpy of ``kind``: a view of Arrow's buffer where it has that type and no
    nulls (read-only: the batcher copies each batch's rows once, into its tensors)."""
    if flat.type != kind:
        flat = pc.cast(flat, kind)
    if flat.null_count:
        flat = pc.fill_null(flat, pa.scalar(null, kind))
    return np.asarray(flat.to_numpy(zero_copy_only=False))
