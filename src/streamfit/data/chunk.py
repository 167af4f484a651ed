"""Chunks: what sources yield, in one canonical Arrow layout whatever the file format.

- dense rows: ``label: float32`` (absent for unlabelled data) and
  ``features: fixed_size_list<float32>[d]``;
- sparse rows: ``label``, ``indices: list<int64>`` and ``values: list<float32>``;
- raw text hashed into columns (:mod:`streamfit.data.documents`) is sparse rows, each row's
  columns summed, plus the words they came from, one entry per distinct word of the row:
  ``words: list<string>``, ``word_indices: list<int64>`` (its column) and
  ``word_counts: list<float32>`` (its count), aligned with each other.

A chunk also says where its rows stand in the source (``positions``: the record or line index
of each row, counted across all files of the source), so that a batch knows how far to skip on
resume and an error can name the line; and, for raw text read with a vocabulary, how many
words of each row the vocabulary lacks (``unknown``).
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
    "WORDS",
    "WORD_COUNTS",
    "WORD_INDICES",
    "Chunk",
    "WordArrays",
    "dense_arrays",
    "dense_record_batch",
    "float_values",
    "is_sparse",
    "labels_array",
    "list_values",
    "sparse_arrays",
    "sparse_record_batch",
    "word_arrays",
]

LABEL = "label"
FEATURES = "features"
INDICES = "indices"
VALUES = "values"
WORDS = "words"
WORD_INDICES = "word_indices"
WORD_COUNTS = "word_counts"

#: The words behind hashed text rows: ``(indptr, column of each, count of each, the words)``,
#: the words as a numpy array of ``str`` objects, so that rows slice as the CSR arrays do.
WordArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

_EMPTY = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Chunk:
    """Rows of one source, with where they came from."""

    batch: pa.RecordBatch
    positions: np.ndarray  # int64: source position of each row
    end: int  # source position after this chunk (skipped rows and blank lines included)
    bad: np.ndarray = field(default_factory=lambda: _EMPTY)  # positions of skipped bad rows
    #: Words of each row missing from the vocabulary (raw text read with one), else None.
    unknown: np.ndarray | None = None

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
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray | None,
    words: WordArrays | None = None,
) -> pa.RecordBatch:
    """A canonical sparse batch from CSR arrays, optional labels and optional words."""
    idx, val = _lists(indptr, [(indices, pa.int64()), (values, pa.float32())])
    arrays, names = [idx, val], [INDICES, VALUES]
    if labels is not None:
        arrays.insert(0, pa.array(np.asarray(labels, dtype=np.float32)))
        names.insert(0, LABEL)
    if words is not None:
        w_indptr, w_indices, w_counts, w_words = words
        arrays += _lists(
            w_indptr,
            [(w_words, pa.string()), (w_indices, pa.int64()), (w_counts, pa.float32())],
        )
        names += [WORDS, WORD_INDICES, WORD_COUNTS]
    return pa.RecordBatch.from_arrays(arrays, names)


def _lists(indptr: np.ndarray, flat: list[tuple[np.ndarray, pa.DataType]]) -> list[pa.Array]:
    """List arrays of the same rows (``indptr``) over each flat array, of its type."""
    offsets = pa.array(np.asarray(indptr, dtype=np.int32 if indptr[-1] < 2**31 else np.int64))
    list_type = pa.ListArray if offsets.type == pa.int32() else pa.LargeListArray
    return [
        list_type.from_arrays(
            offsets,
            pa.array(values, type=kind)
            if kind == pa.string()
            else pa.array(np.asarray(values, dtype=kind.to_pandas_dtype())),
        )
        for values, kind in flat
    ]


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


def word_arrays(batch: pa.RecordBatch) -> WordArrays | None:
    """The words behind a batch of hashed text rows (see the module docstring), else None."""
    if WORDS not in batch.schema.names:
        return None
    words = batch.column(WORDS)
    offsets = np.asarray(words.offsets.to_numpy(), dtype=np.int64)
    flat = words.flatten().to_numpy(zero_copy_only=False).astype(object)
    indices = batch.column(WORD_INDICES).flatten().to_numpy(zero_copy_only=False)
    counts = batch.column(WORD_COUNTS).flatten().to_numpy(zero_copy_only=False)
    return (
        offsets - offsets[0],
        np.asarray(indices, dtype=np.int64),
        np.asarray(counts, dtype=np.float32),
        flat,
    )


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
