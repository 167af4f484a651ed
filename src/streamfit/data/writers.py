"""Writing canonical record batches to every format (``streamfit convert``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from streamfit.data.chunk import (
    dense_arrays,
    is_sparse,
    labels_array,
    sparse_arrays,
)
from streamfit.data.recordio_writer import write_recordio
from streamfit.errors import ConfigError

__all__ = ["WRITERS", "write", "write_csv", "write_jsonl", "write_libsvm", "write_parquet"]

_ROW_GROUP = 65_536


def write_csv(batches: Iterable[pa.RecordBatch], stream: BinaryIO) -> int:
    """SageMaker CSV: label first (when present), no header; dense rows only."""
    rows = 0
    for batch in batches:
        if is_sparse(batch):
            raise ConfigError(
                "CSV holds dense rows only: write sparse data as libsvm, parquet or recordio"
            )
        x = dense_arrays(batch)
        labels = labels_array(batch)
        cols = [pa.array(x[:, j]) for j in range(x.shape[1])]
        names = [f"f{j}" for j in range(x.shape[1])]
        if labels is not None:
            cols.insert(0, pa.array(labels))
            names.insert(0, "label")
        table = pa.Table.from_arrays(cols, names)
        pacsv.write_csv(table, stream, pacsv.WriteOptions(include_header=False))
        rows += batch.num_rows
    return rows


def write_parquet(batches: Iterable[pa.RecordBatch], stream: BinaryIO) -> int:
    """The canonical layout, in row groups of 65,536 rows, without dictionary encoding
    (dictionary-encoded float columns come out larger and slower to read)."""
    writer: pq.ParquetWriter | None = None
    pending: list[pa.RecordBatch] = []
    pending_rows = rows = 0
    try:
        for batch in batches:
            if writer is None:
                writer = pq.ParquetWriter(stream, batch.schema, use_dictionary=False)
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= _ROW_GROUP:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=_ROW_GROUP)
                rows += pending_rows
                pending, pending_rows = [], 0
        if writer is not None and pending:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=_ROW_GROUP)
            rows += pending_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def _rows(batch: pa.RecordBatch) -> Iterable[tuple[float | None, list[int], list[float]]]:
    labels = labels_array(batch)
    if is_sparse(batch):
        indptr, indices, values = sparse_arrays(batch)
        for i in range(batch.num_rows):
            lo, hi = indptr[i], indptr[i + 1]
            label = None if labels is None else float(labels[i])
            yield label, indices[lo:hi].tolist(), values[lo:hi].tolist()
    else:
        x = dense_arrays(batch)
        for i in range(batch.num_rows):
            label = None if labels is None else float(labels[i])
            yield label, [], x[i].tolist()


def write_jsonl(batches: Iterable[pa.RecordBatch], stream: BinaryIO) -> int:
    """``{"label": .., "features": [..]}`` or ``{"label": .., "indices": [..], "values": [..]}``."""
    rows = 0
    for batch in batches:
        sparse = is_sparse(batch)
        lines = []
        for label, indices, values in _rows(batch):
            obj: dict[str, object] = {} if label is None else {"label": label}
            if sparse:
                obj["indices"] = indices
                obj["values"] = values
            else:
                obj["features"] = values
            lines.append(json.dumps(obj))
        stream.write(("\n".join(lines) + "\n").encode() if lines else b"")
        rows += batch.num_rows
    return rows


def write_libsvm(batches: Iterable[pa.RecordBatch], stream: BinaryIO) -> int:
    """``label index:value ...`` with the indices as they are (dense rows skip zeros)."""
    rows = 0
    for batch in batches:
        sparse = is_sparse(batch)
        lines = []
        for label, row_indices, row_values in _rows(batch):
            indices, values = row_indices, row_values
            if not sparse:
                nz = np.flatnonzero(row_values)
                indices, values = nz.tolist(), [row_values[i] for i in nz]
            pairs = " ".join(f"{i}:{v:.9g}" for i, v in zip(indices, values, strict=True))
            lines.append(f"{0.0 if label is None else label:.9g} {pairs}".rstrip())
        stream.write(("\n".join(lines) + "\n").encode() if lines else b"")
        rows += batch.num_rows
    return rows


WRITERS: dict[str, Callable[[Iterable[pa.RecordBatch], BinaryIO], int]] = {
    "csv": write_csv,
    "parquet": write_parquet,
    "jsonl": write_jsonl,
    "libsvm": write_libsvm,
    "recordio": write_recordio,
}


def write(
    fmt: str,
    batches: Iterable[pa.RecordBatch],
    stream: BinaryIO,
    n_features: int | None = None,
) -> int:
    """Write ``batches`` as ``fmt``; ``n_features`` is the sparse width (RecordIO records it)."""
    if fmt not in WRITERS:
        raise ConfigError(f"cannot write format {fmt!r} (known: {', '.join(WRITERS)})")
    if fmt == "recordio":
        return write_recordio(batches, stream, n_features=n_features)
    return WRITERS[fmt](batches, stream)
