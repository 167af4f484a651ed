"""SageMaker RecordIO-protobuf (``application/x-recordio-protobuf``), read (written by
:mod:`streamfit.data.recordio_writer`).

Each record is framed as little-endian uint32 magic ``0xced7230a``, uint32 length (its top three
bits are MXNet's multi-part flags, which the SageMaker SDK never sets), the payload and zero
padding to a multiple of 4 bytes. The payload is an ``aialgs.data.Record`` (the SDK's
record.proto): ``features["values"]`` holds a Float32, Float64 or Int32 tensor of ``values``
(dense) or ``keys`` + ``values`` + ``shape`` (sparse); ``label["values"]`` the label.

The protobuf wire format is decoded by hand, a block of records at once with numpy (the n-th
field of every record together): many times faster than the protobuf runtime, which builds
Python objects per record. Records are read as protobuf serializes them, which is how the SDK
writes them (fields in order, packed, one "values" entry; uid and metadata ignored); a record
laid out otherwise is a bad row.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from streamfit.data.chunk import Chunk
from streamfit.data.text import ReadContext

__all__ = ["MAGIC", "read_recordio"]

Array = npt.NDArray[Any]

MAGIC = 0xCED7230A
_HEADER = struct.Struct("<II")
_SIZE_MASK = (1 << 29) - 1
_KEY = b"\x0a\x06values"  # a map entry's key field: "values"
_ENTRY = np.frombuffer(_KEY + b"\x12", dtype=np.uint8)  # the key, then the Value field's tag
_FLOAT32, _FLOAT64, _INT32, _VARINT = 0x12, 0x1A, 0x3A, 0  # Value's tensor tags; 0: uint64 keys
_KINDS = (_FLOAT32, _FLOAT64, _INT32)
_PAD = bytes(16)  # after a block, so that vectorized reads may run past its end
_MASKS = np.array([0, 0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF], dtype=np.uint32)
_Why = str | Callable[[int], str]  # a bad record's message, or how to make it from its index


# -- framing ---------------------------------------------------------------------------------


def _frames(data: bytes, n: int, first: int, ctx: ReadContext) -> tuple[Array, Array, int]:
    """Payload ranges of the whole records in ``data[:n]``, and the bytes they use.

    Headers are found with numpy: runs of magic numbers, each where the one before says.
    """
    words = np.frombuffer(data, dtype="<u4", count=n // 4)
    cand = np.flatnonzero(words[:-1] == MAGIC)
    sizes = words[cand + 1].astype(np.int64)  # MXNet's multi-part flags (bits 29-31) too
    nxt = 4 * cand + 8 + sizes + (-sizes & 3)
    breaks = np.flatnonzero(np.append(nxt[:-1] != 4 * cand[1:], True))
    ranges: list[Array] = []
    p = count = 0
    while p + 8 <= n:
        k = int(np.searchsorted(cand, p // 4))
        if k < len(cand) and cand[k] == p // 4:
            j = int(breaks[np.searchsorted(breaks, k)])  # records k..j are chained
            big = np.flatnonzero(sizes[k : j + 1] > _SIZE_MASK)
            j = k + int(big[0]) - 1 if len(big) else j if nxt[j] <= n else j - 1
            if j >= k:
                ranges.append(np.stack([4 * cand[k : j + 1] + 8, sizes[k : j + 1]]))
                count, p = count + j + 1 - k, int(nxt[j])
                continue
        magic, size = _HEADER.unpack_from(data, p)
        if magic != MAGIC:
            message = f"bad magic number {magic:#010x}: not RecordIO, or corrupt"
        elif size > _SIZE_MASK:
            message = f"multi-part records (MXNet flag {size >> 29}) are not supported"
        else:
            break  # an incomplete record
        raise ctx.checker.error(first + count, None, message)
    found = np.concatenate(ranges, axis=1) if ranges else np.zeros((2, 0), dtype=np.int64)
    return found[0], found[0] + found[1], p


# -- vectorized protobuf decoding --------------------------------------------------------------


class _Tensor(NamedTuple):
    """Where each record's tensor lies: its tag (0: none) and byte ranges of its fields."""

    kind: Array
    vs: Array
    ve: Array
    ks: Array
    ke: Array
    ss: Array
    se: Array


_Parsed = tuple[Array, _Tensor, "_Tensor | None"]  # odd records, features, label


def _varint_at(buf: Array, pos: Array) -> tuple[Array, Array, Array]:
    """Length varints (up to 5 bytes) at ``pos``: value, position after, ok."""
    b = buf[pos].astype(np.int64)
    value, more, after = b & 0x7F, b >= 0x80, pos + 1
    for shift in (7, 14, 21, 28):
        if not more.any():
            break
        b = buf[after].astype(np.int64)
        value |= np.where(more, (b & 0x7F) << shift, 0)
        after = after + more
        more &= b >= 0x80
    return value, after, ~more


def _field(buf: Array, pos: Array, end: Array) -> tuple[Array, Array, Array, Array]:
    """The length-delimited field at ``pos`` of each record: tag, data start, data end, ok."""
    tag = buf[pos].astype(np.int64)
    size, start, ok = _varint_at(buf, pos + 1)
    stop = start + size
    return tag, start, stop, ok & (tag & 0x87 == 2) & (stop <= end)


def _fields(
    buf: Array, s: Array, e: Array, odd: Array, tags: tuple[int, ...], *, skip: tuple[int, ...] = ()
) -> list[tuple[Array, Array]]:
    """(start, end) of each of ``tags`` (-1: absent) in the messages ``buf[s:e]``.

    Fields must be length-delimited, each once; other messages are marked in ``odd``.
    """
    found = [(np.full(len(s), -1), np.full(len(s), -1)) for _ in tags]
    pos = s.copy()
    while len(act := np.flatnonzero((pos < e) & ~odd)):
        tag, start, stop, ok = _field(buf, pos[act], e[act])
        known = np.isin(tag, skip)
        for t, (fs, fe) in zip(tags, found, strict=True):
            hit = tag == t
            known |= hit
            ok &= ~(hit & (fs[act] >= 0))
            hit &= ok
            fs[act[hit]], fe[act[hit]] = start[hit], stop[hit]
        odd[act[~(ok & known)]] = True
        pos[act] = stop
    return found


def _tensor(buf: Array, s: Array, e: Array, odd: Array) -> _Tensor:
    """The tensor of each map entry ``buf[s:e]`` (``s`` -1: none), keyed "values"."""
    has = s >= 0
    at = np.where(has, s, 0)
    key_ok = (buf[at[:, None] + np.arange(len(_ENTRY))] == _ENTRY).all(axis=1)
    size, vs, ok = _varint_at(buf, at + len(_ENTRY))
    kind, ts, te, ok2 = _field(buf, vs, e)
    ok &= key_ok & ok2 & (vs + size == e) & (te == e) & np.isin(kind, _KINDS)
    odd |= has & ~ok
    good = has & ~odd
    kind, ts, te = np.where(good, kind, 0), np.where(good, ts, 0), np.where(good, te, 0)
    ranges = _fields(buf, ts, te, odd, (0x0A, 0x12, 0x1A))
    (vs, ve), (ks, ke), (ss, se) = [(np.maximum(a, 0), np.maximum(b, 0)) for a, b in ranges]
    wrong = np.where(kind == _FLOAT32, ve - vs, 0) % 4 + np.where(kind == _FLOAT64, ve - vs, 0) % 8
    for start, stop, varint in ((vs, ve, kind == _INT32), (ks, ke, True), (ss, se, True)):
        wrong |= varint & (stop > start) & (buf[np.maximum(stop - 1, 0)] >= 0x80)
    odd |= wrong != 0
    return _Tensor(*(np.where(odd, 0, a) for a in (kind, vs, ve, ks, ke, ss, se)))


def _positions(s: Array, e: Array, step: int = 1) -> tuple[Array, Array]:
    """Positions of the ``step``-byte items of the ranges ``[s, e)``, and their counts."""
    counts = (e - s) // step
    base = np.repeat(s - step * (np.cumsum(counts) - counts), counts)
    return base + step * np.arange(len(base)), counts


def _gather(buf: Array, s: Array, e: Array) -> Array:
    """The bytes of the ranges ``buf[s:e]``, back to back."""
    if 8 * int((e - s).sum()) < len(buf) or (s[1:] < e[:-1]).any():  # few, or not in order
        return buf[_positions(s, e)[0]]
    edges = np.concatenate(([0], np.stack([s, e], axis=1).ravel(), [len(buf)]))
    inside = np.zeros(len(edges) - 1, dtype=bool)
    inside[1::2] = True
    out: Array = buf[np.repeat(inside, np.diff(edges))]
    return out


def _varints(b: Array) -> tuple[Array, Array]:
    """Decode back-to-back varints (the last byte ends one) as uint64; where each ends."""
    ends = np.flatnonzero(b < 0x80)
    starts = np.concatenate(([0], ends[:-1] + 1))
    size, b = ends - starts + 1, np.concatenate((b, np.zeros(10, dtype=np.uint8)))
    if size.max(initial=1) <= 4:  # below 2**28: 7-bit groups of a uint32
        w = np.ndarray((len(b) - 3,), "<u4", buffer=b, strides=(1,))[starts] & _MASKS[size]
        v = (w & 0x7F) | (w >> 1 & 0x3F80) | (w >> 2 & 0x1FC000) | (w >> 3 & 0xFE00000)
        return v.astype(np.uint64), ends
    out = (b[starts] & 0x7F).astype(np.uint64)
    for k in range(1, min(int(size.max(initial=1)), 10)):
        byte = (b[starts + k] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        out |= np.where(size > k, byte, np.uint64(0))
    return out, ends


def _values(buf: Array, kind: int, s: Array, e: Array) -> tuple[Array, Array]:
    """The numbers of the packed fields ``buf[s:e]`` of one type (floats: float32), and counts."""
    if kind in (_FLOAT32, _FLOAT64):
        size = 4 if kind == _FLOAT32 else 8
        counts, step = (e - s) // size, int(s[1] - s[0]) if len(s) > 1 else 0
        if len(s) and (counts == counts[0]).all() and (np.diff(s) == step).all():  # dense rows
            items = np.ndarray((len(buf) - size + 1,), f"<f{size}", buffer=buf, strides=(1,))
            shape = (len(s), int(counts[0]))
            values = as_strided(items[s[0] :], shape, (step, size)).reshape(-1)
        else:
            values = _gather(buf, s, e).view(f"<f{size}")
        with np.errstate(over="ignore"):  # float64 beyond float32: inf, which the checker reports
            return values.astype(np.float32, copy=False), counts
    values, ends = _varints(_gather(buf, s, e))
    counts = np.diff(np.searchsorted(ends, np.concatenate(([0], np.cumsum(e - s)))))
    return values.view(np.int64) if kind == _INT32 else values, counts


def _floats(buf: Array, t: _Tensor) -> tuple[Array, Array]:
    """Each record's tensor values as float32 (tensors of any types), and their counts."""
    kinds = [int(k) for k in np.unique(t.kind) if k]
    if len(kinds) <= 1:
        values, counts = _values(buf, kinds[0] if kinds else _FLOAT32, t.vs, t.ve)
        return values.astype(np.float32, copy=False), counts
    counts, parts = np.zeros(len(t.kind), dtype=np.int64), []
    for kind in kinds:
        sel = t.kind == kind
        values, counts[sel] = _values(buf, kind, t.vs[sel], t.ve[sel])
        parts.append((sel, values))
    out, at = np.empty(int(counts.sum()), dtype=np.float32), np.cumsum(counts) - counts
    for sel, values in parts:
        out[_positions(at[sel], at[sel] + counts[sel])[0]] = values
    return out, counts


# -- reading -----------------------------------------------------------------------------------


def read_recordio(stream: BinaryIO, ctx: ReadContext) -> Generator[Chunk, None, int]:
    """Yield chunks of about ``ctx.block_bytes`` of records; returns the stream's record count."""
    ctx.checker.enter(ctx.checker.file, ctx.offset, "record")
    decoder, carry, index, want = _Decoder(ctx), b"", 0, ctx.block_bytes
    while True:
        data = stream.read(want)
        block, n = b"".join((carry, data, _PAD)), len(carry) + len(data)
        starts, ends, used = _frames(block, n, ctx.offset + index, ctx)
        carry = block[used:n]
        if not data:
            if carry:
                message = f"truncated record: {len(carry)} bytes at the end of the stream"
                raise ctx.checker.error(ctx.offset + index, None, message)
            return index
        want = max(ctx.block_bytes, len(carry))  # a record larger than a block: read it whole
        first, index = index, index + len(starts)
        drop = min(len(starts), max(0, ctx.skip - first))
        if drop < len(starts):
            buf = np.frombuffer(block, dtype=np.uint8)
            chunk = decoder.chunk(buf, starts[drop:], ends[drop:], ctx.offset + first + drop)
            if chunk is not None:
                yield chunk


def _parse(buf: Array, s: Array, e: Array, labelled: bool) -> _Parsed:
    """Where the features and label of each record lie; ``odd``: records laid out otherwise."""
    odd = np.zeros(len(s), dtype=bool)
    (fs, fe), (ls, le) = _fields(buf, s, e, odd, (0x0A, 0x12), skip=(0x1A, 0x22, 0x2A))
    return odd, _tensor(buf, fs, fe, odd), _tensor(buf, ls, le, odd) if labelled else None


def _parse_alike(buf: Array, s: Array, e: Array, labelled: bool) -> _Parsed:
    """``_parse``, of the first record only if all have its bytes but for float values."""
    n, size, step = len(s), int(e[0] - s[0]), int(s[1] - s[0]) if len(s) > 1 else 0
    if n > 2 and (e - s == size).all() and (np.diff(s) == step).all():
        odd, *tensors = _parse(buf, s[:1], e[:1], True)
        fixed = np.ones(size, dtype=bool)
        for t in tensors:
            if t is not None and t.kind[0] in (_FLOAT32, _FLOAT64):
                fixed[t.vs[0] - s[0] : t.ve[0] - s[0]] = False
        rows = as_strided(buf[s[0] :], (n, size), (step, 1))
        if not odd[0] and (rows[:, fixed] == rows[0, fixed]).all():
            feats, label = (
                _Tensor(np.repeat(t.kind, n), *(r + (s - s[0]) for r in t[1:]))
                for t in tensors
                if t is not None
            )
            return np.zeros(n, dtype=bool), feats, label if labelled else None
    return _parse(buf, s, e, labelled)


@dataclass
class _Decoder:
    """Turns blocks of records into chunks; the first record says dense or sparse."""

    ctx: ReadContext
    sparse: bool | None = None
    pending: list[int] = field(default_factory=list)  # bad records before the first good one

    def chunk(self, buf: Array, s: Array, e: Array, first: int) -> Chunk | None:
        """The chunk of the records ``buf[s:e]``, the first at position ``first``.

        None until a record says dense or sparse: a chunk of the wrong kind would stop the
        batcher, so bad records wait in ``pending`` for the first chunk (in a file of bad
        records only, the checker alone counts them).
        """
        checker, n = self.ctx.checker, len(s)
        odd, feats, label = _parse_alike(buf, s, e, checker.labelled)
        positions = first + np.arange(n, dtype=np.int64)
        ok, bad = np.ones(n, dtype=bool), []

        def reject(rows: Array, why: _Why, name: str | None = "features") -> None:
            for i in np.flatnonzero(rows):
                checker.bad(int(positions[i]), name, why(int(i)) if callable(why) else why)
                bad.append(int(positions[i]))
            ok[rows] = False

        reject(odd, "not a Record, or not laid out as protobuf writes one", None)
        reject(ok & (feats.kind == 0), 'no "values" feature tensor')
        values, counts = _floats(buf, feats)
        sparse = (feats.ke > feats.ks) | (feats.se > feats.ss)
        telling = ok & (sparse | (counts > 0))  # an empty dense row says nothing
        if self.sparse is None and telling.any():
            self.sparse = bool(sparse[np.argmax(telling)])
        if self.sparse is None:  # no record with values yet
            reject(ok, "no feature values")
            self.pending += bad
            return None
        bad, self.pending = self.pending + bad, []
        labels = None
        if label is not None:
            label_values, label_counts = _floats(buf, label)
            labels = np.full(n, np.nan, dtype=np.float32)
            has = label_counts > 0
            labels[has] = label_values[(np.cumsum(label_counts) - label_counts)[has]]
        if self.sparse:
            keys, key_counts = _values(buf, _VARINT, feats.ks, feats.ke)
            reject(ok & ~sparse & (counts > 0), "dense record in sparse data")
            mismatch = ok & (key_counts != counts)
            reject(mismatch, lambda i: f"{key_counts[i]} keys, {counts[i]} values")
            shaped = np.flatnonzero(ok & (feats.se > feats.ss))
            if checker.max_index is None and len(shaped):
                i = shaped[0]
                checker.max_index = int(_varints(buf[feats.ss[i] : feats.se[i]])[0][0]) or None
            keep, y = np.flatnonzero(ok), None if labels is None else labels[ok]
            indptr = np.concatenate(([0], np.cumsum(counts[ok])))
            indices = keys[np.repeat(ok, key_counts)].view(np.int64)
            data = values[np.repeat(ok, counts)]
            return checker.sparse(indptr, indices, data, y, positions[keep], first + n, bad)
        reject(ok & sparse, "sparse record in dense data")
        reject(ok & (counts == 0), "no feature values")
        if ok.any():
            i = int(np.argmax(ok))
            checker.fix_width(int(counts[i]), int(positions[i]))
        width = checker.n_features or 0
        reject(ok & (counts != width), lambda i: f"{counts[i]} features where the data has {width}")
        keep, y = np.flatnonzero(ok), None if labels is None else labels[ok]
        x = values if len(keep) == n else values[np.repeat(ok, counts)]
        return checker.dense(x.reshape(len(keep), width), y, positions[keep], first + n, bad)
