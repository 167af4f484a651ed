"""Chunks: what sources yield, in one canonical Arrow layout whatever the file format.

- dense rows: ``label: float32`` (absent for unlabelled data) and
  ``features: fixed_size_list<float32>[d]``;
- sparse rows: ``label``, ``indices: list<int64>`` and ``values: list<float32>``.

A chunk also says where its rows stand in the source (``positions``: the record or line index
of each row, counted across all files of the source), so that a batch knows how far to skip on
resume and an error can name the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "FEATURES",
    "INDICES",
    "LABEL",
    "VALUES",
    "Chunk",
    "dense_arrays",
    "dense_record_batch",
    "float_values",
    "is_sparse",
    "labels_array",
    "list_values",
    "sparse_arrays",
    "sparse_record_batch",
]

LABEL = "label"
FEATURES = "features"
INDICES = "indices"
VALUES = "values"

_EMPTY = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Chunk:
    """Rows of one source, with where they came from."""

    batch: pa.RecordBatch
    positions: np.ndarray  # int64: source position of each row
    end: int  # source position after this chunk (skipped rows and blank lines included)
    bad: np.ndarray = field(default_factory=lambda: _EMPTY)  # positions of skipped bad rows

    @property
    def n_rows(self) -> int:
        return int(self.batch.num_rows)


def dense_record_batch(x: np.ndarray, labels: np.ndarray | None) -> pa.RecordBatch:
    """A canonical dense batch from an ``(n, d)`` float32 array and optional labels."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    # A chunk of only bad rows may come before the width is known; Arrow needs some width.
    d = max(x.shape[1], 1) if len(x) == 0 else x.shape[1]
    x = x.reshape(len(x), d)
    feats = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d)
    if labels is None:
        return pa.RecordBatch.from_arrays([feats], [FEATURES])
    return pa.RecordBatch.from_arrays(
        [pa.array(np.asarray(labels, dtype=np.float32)), feats], [LABEL, FEATURES]
    )


def sparse_record_batch(
    indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, labels: np.ndarray | None
) -> pa.RecordBatch:
    """A canonical sparse batch from CSR arrays and optional labels."""
    offsets = pa.array(np.asarray(indptr, dtype=np.int32 if indptr[-1] < 2**31 else np.int64))
    list_type = pa.ListArray if offsets.type == pa.int32() else pa.LargeListArray
    idx = list_type.from_arrays(offsets, pa.array(np.asarray(indices, dtype=np.int64)))
    val = list_type.from_arrays(offsets, pa.array(np.asarray(values, dtype=np.float32)))
    arrays, names = [idx, val], [INDICES, VALUES]
    if labels is not None:
        arrays.insert(0, pa.array(np.asarray(labels, dtype=np.float32)))
        names.insert(0, LABEL)
    return pa.RecordBatch.from_arrays(arrays, names)


def is_sparse(batch: pa.RecordBatch) -> bool:
    return INDICES in batch.schema.names


def labels_array(batch: pa.RecordBatch) -> np.ndarray | None:
    if LABEL not in batch.schema.names:
        return None
    return np.asarray(batch.column(LABEL).to_numpy(zero_copy_only=False), dtype=np.float32)


def dense_arrays(batch: pa.RecordBatch) -> np.ndarray:
    """The ``(n, d)`` float32 feature matrix of a canonical dense batch (zero-copy if it can)."""
    col = batch.column(FEATURES)
    d = col.type.list_size
    flat = col.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(len(col), d)


def sparse_arrays(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr, indices, values)`` of a canonical sparse batch, indptr starting at zero."""
    idx = batch.column(INDICES)
    offsets = np.asarray(idx.offsets.to_numpy(), dtype=np.int64)
    indices = np.asarray(idx.flatten().to_numpy(zero_copy_only=False), dtype=np.int64)
    if VALUES in batch.schema.names:
        values = batch.column(VALUES).flatten().to_numpy(zero_copy_only=False)
        values = np.asarray(values, dtype=np.float32)
    else:
        values = np.ones(len(indices), dtype=np.float32)
    return offsets - offsets[0], indices, values


def float_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A float32 array with nulls as NaN (the checker reports them)."""
    col = pc.cast(column, pa.float32())
    return np.asarray(pc.fill_null(col, np.nan).to_numpy(zero_copy_only=False), dtype=np.float32)


def list_values(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets from 0, flat values, null mask) of a list column."""
    arr = column.combine_chunks()
    if pa.types.is_fixed_size_list(arr.type):
        size = arr.type.list_size
        offsets = np.arange(len(arr) + 1, dtype=np.int64) * size
        flat = arr.flatten()
    else:
        offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)
        flat = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
        offsets = offsets - offsets[0]
    nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return offsets, float_values(flat) if len(flat) else np.empty(0, np.float32), nulls
