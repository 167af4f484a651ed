"""The hashing trick: any feature id, or a raw categorical value, folded into a fixed space.

Ids are mixed as splitmix64 mixes its counter (a bijection on 64 bits with full avalanche, so that
neighbouring ids land far apart) and reduced modulo the space. A categorical value is hashed
with its column's name (``column=value``) by BLAKE2b, so the same string in two columns is two
features; a numeric column becomes one feature whose value is the number; a word of raw text
is hashed alone (:func:`hash_words`). Hashes are stable
across processes and machines (never Python's salted ``hash``), so a model trained on hashed
features scores new data the same way.

>>> hash_ids(np.array([0, 1, 2**40]), 1 << 20).tolist()
[904623, 154817, 50057]
>>> hash_strings(["shop", "shop", "news"], "site", 1000).tolist()
[495, 495, 454]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["categorical_rows", "hash_ids", "hash_strings", "hash_words", "is_categorical"]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def hash_ids(ids: np.ndarray, space: int) -> np.ndarray:
    """Each id's place in ``[0, space)`` (int64 ids, negative ones included)."""
    z = ids.astype(np.int64, copy=False).view(np.uint64).copy()
    with np.errstate(over="ignore"):
        z += _GAMMA
        z ^= z >> np.uint64(30)
        z *= _M1
        z ^= z >> np.uint64(27)
        z *= _M2
        z ^= z >> np.uint64(31)
    return (z % np.uint64(space)).astype(np.int64)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def hash_strings(values: Sequence[str], column: str, space: int) -> np.ndarray:
    """The feature index of ``column=value`` for each value."""
    return np.fromiter(
        (_digest(f"{column}={v}") % space for v in values), dtype=np.int64, count=len(values)
    )


def is_categorical(kind: pa.DataType) -> bool:
    """String-like columns (and dictionaries of them) are categorical."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def categorical_rows(
    table: pa.Table, columns: Sequence[str], space: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR ``(indptr, indices, values)`` of ``table``'s ``columns`` hashed into ``space``:
    one entry per non-null cell; a categorical cell is ``column=value`` with value 1, a
    numeric one is ``column`` with its value.

    Strings are hashed once per distinct value of the piece (dictionary-encoded first), so
    the cost follows the number of distinct values, not of rows.
    """
    n = table.num_rows
    idx = np.zeros((n, len(columns)), dtype=np.int64)
    val = np.zeros((n, len(columns)), dtype=np.float32)
    present = np.zeros((n, len(columns)), dtype=bool)
    for j, name in enumerate(columns):
        col = table.column(name).combine_chunks()
        present[:, j] = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if is_categorical(col.type):
            encoded = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
            codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
            table_ids = hash_strings(encoded.dictionary.to_pylist(), name, space)
            idx[:, j] = table_ids[codes] if len(table_ids) else 0
            val[:, j] = 1.0
        else:
            idx[:, j] = _digest(name) % space
            val[:, j] = np.asarray(
                col.cast(pa.float32()).fill_null(0).to_numpy(zero_copy_only=False)
            )
    counts = present.sum(1)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, idx[present], val[present]


def hash_words(words: Sequence[str], space: int) -> np.ndarray:
    """The column of each word of raw text: BLAKE2b of its UTF-8 (no column name), modulo
    ``space``.

    >>> hash_words(["kernel", "gpu"], 5000).tolist()
    [263, 4661]
    """
    return np.fromiter((_digest(w) % space for w in words), dtype=np.int64, count=len(words))
