"""SageMaker RecordIO-protobuf written as the SageMaker SDK writes it: one row a record, fields
in protobuf's order (the format is described in :mod:`streamfit.data.recordio`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from streamfit.data.chunk import dense_arrays, is_sparse, labels_array, sparse_arrays
from streamfit.data.recordio import _FLOAT32, _HEADER, _KEY, _PAD, _SIZE_MASK, MAGIC, Array
from streamfit.errors import ConfigError

__all__ = ["encode_label_records", "write_recordio"]

_SMALL = [bytes((i,)) for i in range(128)]


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_array(v: Array) -> tuple[bytes, Array]:
    """Varints of non-negative integers, back to back, and the byte offset of each (and the end)."""
    v = v.astype(np.uint64)
    size = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        size += v >= np.uint64(1 << (7 * k))
    offsets = np.concatenate(([0], np.cumsum(size)))
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    for k in range(int(size.max(initial=0))):
        sel = size > k
        byte = (v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
        out[offsets[:-1][sel] + k] = byte | np.where(size[sel] > k + 1, 0x80, 0).astype(np.uint64)
    return out.tobytes(), offsets


def _ld(tag: int, data: bytes) -> bytes:
    """A length-delimited field."""
    return _SMALL[tag] + _varint(len(data)) + data


_LABEL_HEAD = _ld(0x12, _KEY + _ld(0x12, _ld(_FLOAT32, _ld(0x0A, bytes(4)))))[:-4]


def _record(values: bytes | None, keys: bytes, shape: bytes, label: bytes | None) -> bytes:
    """A Record as protobuf serializes it: Float32 features (None: none) and label (4 bytes)."""
    out = b""
    if values is not None:
        parts = ((0x0A, values), (0x12, keys), (0x1A, shape))
        tensor = b"".join(_ld(tag, data) for tag, data in parts if data)
        out = _ld(0x0A, _KEY + _ld(0x12, _ld(_FLOAT32, tensor)))
    return out if label is None else out + _LABEL_HEAD + label


def _frame(payload: bytes) -> bytes:
    if len(payload) > _SIZE_MASK:
        raise ValueError(f"a record of {len(payload)} bytes is too large for RecordIO")
    return _HEADER.pack(MAGIC, len(payload)) + payload + _PAD[: -len(payload) & 3]


def write_recordio(
    batches: Iterable[pa.RecordBatch], stream: BinaryIO, *, n_features: int | None = None
) -> int:
    """Write canonical batches one row per record, as the SageMaker SDK does; returns rows.

    Sparse records carry ``shape=[n_features]``; without it, the first batch's largest index
    + 1 is used for every record, and a later index beyond it is an error (readers take the
    first record's shape as the width of the whole file). A given ``n_features`` is written
    as is (readers then report indices beyond it).
    """
    rows = 0
    inferred = n_features is None
    for batch in batches:
        n, labels = batch.num_rows, labels_array(batch)
        lab = b"" if labels is None else labels.astype("<f4").tobytes()
        labs = [None] * n if labels is None else [lab[i : i + 4] for i in range(0, 4 * n, 4)]
        if is_sparse(batch):
            indptr, indices, values = sparse_arrays(batch)
            if n_features is None:
                n_features = int(indices.max(initial=-1)) + 1
            elif inferred and len(indices) and int(indices.max()) >= n_features:
                raise ConfigError(
                    f"feature index {int(indices.max())} does not fit the RecordIO shape "
                    f"[{n_features}]; give the number of features (--feature-dim)"
                )
            dim = n_features
            shape, vals = _varint(dim), values.astype("<f4").tobytes()
            keys, at = _varint_array(indices)
            bounds = zip(indptr[:-1].tolist(), indptr[1:].tolist(), labs, strict=True)
            records = (
                _record(vals[4 * a : 4 * b], keys[at[a] : at[b]], shape, y) for a, b, y in bounds
            )
        else:
            x = dense_arrays(batch)
            xb, size = x.astype("<f4").tobytes(), 4 * x.shape[1]
            rows_labels = zip(range(0, size * n, size), labs, strict=True)
            records = (_record(xb[a : a + size], b"", b"", y) for a, y in rows_labels)
        stream.write(b"".join(_frame(r) for r in records))
        rows += n
    return rows


def encode_label_records(records: Iterable[Mapping[str, float | Sequence[float]]]) -> bytes:
    """Records that hold only a label map, a Float32Tensor per name: how SageMaker's built-ins
    answer in RecordIO-protobuf (``label["score"].float32_tensor.values``), one record per row.

    >>> encode_label_records([{"score": 0.5}]).hex(" ")
    '0a 23 d7 ce 13 00 00 00 12 11 0a 05 73 63 6f 72 65 12 08 12 06 0a 04 00 00 00 3f 00'
    """
    out = []
    for record in records:
        entries = b""
        for name, value in record.items():
            values = np.asarray(value, dtype="<f4").ravel().tobytes()
            tensor = _ld(_FLOAT32, _ld(0x0A, values) if values else b"")
            entries += _ld(0x12, _ld(0x0A, name.encode()) + _ld(0x12, tensor))
        out.append(_frame(entries))
    return b"".join(out)
