"""SageMaker RecordIO-protobuf (``application/x-recordio-protobuf``), read and written.

Each record is framed as little-endian uint32 magic ``0xced7230a``, uint32 length (its top three
bits are MXNet's multi-part flags), the payload and zero padding to a multiple of 4 bytes. The
payload is an ``aialgs.data.Record``: ``features["values"]`` holds a Float32, Float64 or Int32
tensor of ``values`` (dense) or ``keys`` + ``values`` + ``shape`` (sparse), ``label["values"]``
the label.

Reading decodes a block of records at once with numpy, the n-th field of every record together,
for records laid out as protobuf serializes them (what the SageMaker SDK writes). A record laid
out otherwise (unpacked or repeated fields, other map keys) is parsed by the protobuf runtime and
re-encoded in that layout first.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from numpy.lib.stride_tricks import as_strided

from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk, dense_arrays, is_sparse, labels_array, sparse_arrays
from streamfit.data.text import ReadContext

__all__ = ["MAGIC", "read_recordio", "record_class", "write_recordio"]

Array = npt.NDArray[Any]

MAGIC = 0xCED7230A
_HEADER = struct.Struct("<II")
_SIZE_MASK = (1 << 29) - 1
_KEY = b"\x0a\x06values"  # a map entry's key field: "values"
_ENTRY = np.frombuffer(_KEY + b"\x12", dtype=np.uint8)  # the key, then the Value field's tag
_FLOAT32, _FLOAT64, _INT32, _VARINT = 0x12, 0x1A, 0x3A, 0  # Value's tensor tags; 0: uint64 keys
_KINDS = (_FLOAT32, _FLOAT64, _INT32)
_STRINGS = ("uid", "metadata", "configuration")  # Record fields 3-5, ignored
_PAD = bytes(16)  # after a block, so that vectorized reads may run past its end
_SMALL = [bytes((i,)) for i in range(128)]


# -- framing ---------------------------------------------------------------------------------


def _frames(
    data: bytes, n: int, first: int, ctx: ReadContext
) -> tuple[list[int], list[int], bytes, int]:
    """Payload ranges of the whole records in ``data[:n]``, and the bytes they use.

    Multi-part payloads (MXNet splits records at magic numbers) are joined after those bytes.
    """
    starts: list[int] = []
    ends: list[int] = []
    joined: list[bytes] = []
    multi: list[int] = []
    words = np.frombuffer(data, dtype="<u4", count=n // 4)
    p, last, unpack = 0, -1, _HEADER.unpack_from
    while p + 8 <= n:
        magic, word = unpack(data, p)
        size = word & _SIZE_MASK
        stride = 8 + size + (-size & 3)
        if magic == MAGIC and word == last:  # as long as the one before: find a run of them
            run = (n - p) // stride
            heads = words[p // 4 :][: run * stride // 4 : stride // 4]
            lens = words[p // 4 + 1 :][: run * stride // 4 : stride // 4]
            same = (heads == MAGIC) & (lens == word)
            run = run if same.all() else int(np.argmin(same))
            if run:
                starts.extend(range(p + 8, p + 8 + run * stride, stride))
                ends.extend(range(p + 8 + size, p + 8 + size + run * stride, stride))
                p += run * stride
                continue
        last = word
        try:
            if magic != MAGIC:
                raise ValueError(f"bad magic number {magic:#010x}: not RecordIO, or corrupt")
            if word >> 29:
                part = _multipart(data, p, n)
                if part is None:
                    break
                multi.append(len(starts))
                starts.append(p)
                ends.append(len(part[0]))
                joined.append(part[0])
                stride = part[1] - p
            elif p + stride > n:
                break
            else:
                starts.append(p + 8)
                ends.append(p + 8 + size)
        except ValueError as exc:
            raise ctx.checker.error(first + len(starts), None, str(exc)) from None
        p += stride
    at = p
    for k in multi:
        starts[k], at = at, at + ends[k]
        ends[k] = at
    return starts, ends, b"".join(joined), p


def _multipart(data: bytes, p: int, n: int) -> tuple[bytes, int] | None:
    """The payload of the multi-part record at ``p`` and where it ends; None if incomplete."""
    pieces: list[bytes] = []
    while True:
        if p + 8 > n:
            return None
        magic, word = _HEADER.unpack_from(data, p)
        flag, size = word >> 29, word & _SIZE_MASK
        if magic != MAGIC or flag != (1 if not pieces else flag if flag in (2, 3) else -1):
            raise ValueError(f"bad multi-part record (magic {magic:#010x}, flag {flag})")
        if p + 8 + size > n:
            return None
        pieces.append(data[p + 8 : p + 8 + size])
        p += 8 + size + (-size & 3)
        if flag == 3:
            return MAGIC.to_bytes(4, "little").join(pieces), p


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
    return _Tensor(kind, vs, ve, ks, ke, ss, se)


def _positions(s: Array, e: Array, step: int = 1) -> tuple[Array, Array]:
    """Positions of the ``step``-byte items of the ranges ``[s, e)``, and their counts."""
    counts = (e - s) // step
    base = np.repeat(s - step * (np.cumsum(counts) - counts), counts)
    return base + step * np.arange(len(base)), counts


def _varints(b: Array) -> Array:
    """Decode back-to-back varints (the last byte ends one) as uint64."""
    ends = np.flatnonzero(b < 0x80)
    if len(ends) == len(b):
        return b.astype(np.uint64)
    starts = np.concatenate(([0], ends[:-1] + 1))
    shift = 7 * (np.arange(len(b)) - np.repeat(starts, ends - starts + 1))
    parts = (b & 0x7F).astype(np.uint64) << np.minimum(shift, 63).astype(np.uint64)
    return np.bitwise_or.reduceat(parts, starts)


def _values(buf: Array, kind: int, s: Array, e: Array) -> tuple[Array, Array]:
    """The numbers of the packed fields ``buf[s:e]`` of one type, and their counts."""
    if kind in (_FLOAT32, _FLOAT64):
        size = 4 if kind == _FLOAT32 else 8
        items = np.ndarray((len(buf) - size + 1,), f"<f{size}", buffer=buf, strides=(1,))
        counts, step = (e - s) // size, int(s[1] - s[0]) if len(s) > 1 else 0
        if len(s) and (counts == counts[0]).all() and (np.diff(s) == step).all():  # dense rows
            shape = (len(s), int(counts[0]))
            return as_strided(items[s[0] :], shape, (step, size)).reshape(-1), counts
        pos, counts = _positions(s, e, size)
        return items[pos], counts
    pos, nbytes = _positions(s, e)
    b = buf[pos]
    done = np.concatenate(([0], np.cumsum(b < 0x80)))
    offsets = np.concatenate(([0], np.cumsum(nbytes)))
    values = _varints(b)
    return values.view(np.int64) if kind == _INT32 else values, done[offsets[1:]] - done[
        offsets[:-1]
    ]


def _float_values(buf: Array, kinds: Array, s: Array, e: Array) -> tuple[Array, Array]:
    """Each record's tensor values as float32 (tensors of any type), and their counts."""
    present = [k for k in _KINDS if (kinds == k).any()]
    if len(present) <= 1:
        values, counts = _values(buf, present[0] if present else _FLOAT32, s, e)
        return values.astype(np.float32, copy=False), counts
    counts = np.zeros(len(s), dtype=np.int64)
    parts = []
    for k in present:
        sel = kinds == k
        values, counts[sel] = _values(buf, k, s[sel], e[sel])
        parts.append((sel, values))
    out = np.empty(int(counts.sum()), dtype=np.float32)
    starts = np.cumsum(counts) - counts
    for sel, values in parts:
        out[_positions(starts[sel], starts[sel] + counts[sel])[0]] = values
    return out, counts


# -- the protobuf runtime, for records the fast path does not read -----------------------------


@cache
def record_class() -> Any:
    """The ``aialgs.data.Record`` message class, built at runtime from its descriptor."""
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="streamfit/record.proto", package="aialgs.data", syntax="proto2"
    )

    R, Opt, M = True, False, F.TYPE_MESSAGE

    def message(parent: Any, name: str, *fields: tuple[str, int, int, str, bool]) -> Any:
        msg = parent.add(name=name)
        for field_name, number, type_, type_name, repeated in fields:
            label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
            f = msg.field.add(name=field_name, number=number, type=type_, label=label)
            if type_name:
                f.type_name = f".aialgs.data.{type_name}"
            if repeated and type_ not in (M, F.TYPE_STRING, F.TYPE_BYTES):
                f.options.packed = True
        return msg

    types = (("Float32", F.TYPE_FLOAT), ("Float64", F.TYPE_DOUBLE), ("Int32", F.TYPE_INT32))
    for name, type_ in types:
        keys, shape = ("keys", 2, F.TYPE_UINT64, "", R), ("shape", 3, F.TYPE_UINT64, "", R)
        message(file.message_type, f"{name}Tensor", ("values", 1, type_, "", R), keys, shape)
    bytes_fields = ("value", 1, F.TYPE_BYTES, "", R), ("content_type", 2, F.TYPE_STRING, "", Opt)
    message(file.message_type, "Bytes", *bytes_fields)
    value = message(
        file.message_type,
        "Value",
        ("float32_tensor", 2, M, "Float32Tensor", Opt),
        ("float64_tensor", 3, M, "Float64Tensor", Opt),
        ("int32_tensor", 7, M, "Int32Tensor", Opt),
        ("bytes", 9, M, "Bytes", Opt),
    )
    value.oneof_decl.add(name="value")
    for f in value.field:
        f.oneof_index = 0
    strings = [(name, i, F.TYPE_STRING, "", Opt) for i, name in enumerate(_STRINGS, 3)]
    record = message(
        file.message_type,
        "Record",
        ("features", 1, M, "Record.FeaturesEntry", R),
        ("label", 2, M, "Record.LabelEntry", R),
        *strings,
    )
    for entry in ("FeaturesEntry", "LabelEntry"):
        kv = ("key", 1, F.TYPE_STRING, "", Opt), ("value", 2, M, "Value", Opt)
        message(record.nested_type, entry, *kv).options.map_entry = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def _canonical(payload: bytes) -> bytes | None:
    """A record re-encoded in the layout the fast path reads; None if it is not a Record."""
    record = record_class()()
    try:
        record.ParseFromString(payload)
    except DecodeError:
        return None
    feats, label = _runtime_tensor(record.features), _runtime_tensor(record.label)
    lab = None if label is None or not label.values else struct.pack("<f", label.values[0])
    if feats is None:
        return _record(None, b"", b"", lab)
    values = np.asarray(feats.values, dtype="<f4").tobytes()
    keys = _varint_array(np.asarray(feats.keys, dtype=np.uint64))[0]
    shape = b"".join(_varint(int(n)) for n in feats.shape)
    return _record(values, keys, shape, lab)


def _runtime_tensor(entries: Any) -> Any:
    if "values" not in entries:
        return None
    value = entries["values"]
    which = value.WhichOneof("value")
    return None if which in (None, "bytes") else getattr(value, which)


# -- encoding ----------------------------------------------------------------------------------


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

    Sparse records carry ``shape=[n_features]`` (default: the batch's largest index + 1).
    """
    rows = 0
    for batch in batches:
        n, labels = batch.num_rows, labels_array(batch)
        lab = b"" if labels is None else labels.astype("<f4").tobytes()
        labs = [None] * n if labels is None else [lab[i : i + 4] for i in range(0, 4 * n, 4)]
        if is_sparse(batch):
            indptr, indices, values = sparse_arrays(batch)
            dim = n_features if n_features is not None else int(indices.max(initial=-1)) + 1
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


# -- reading -----------------------------------------------------------------------------------


@dataclass
class _State:
    sparse: bool | None = None  # decided by the first record


def read_recordio(stream: BinaryIO, ctx: ReadContext) -> Generator[Chunk, None, int]:
    """Yield chunks of about ``ctx.block_bytes`` of records; returns the stream's record count."""
    checker = ctx.checker
    checker.enter(checker.file, ctx.offset, "record")
    state, carry, index, want = _State(), b"", 0, ctx.block_bytes
    while True:
        data = stream.read(want)
        block, n = b"".join((carry, data, _PAD)), len(carry) + len(data)
        starts, ends, joined, used = _frames(block, n, ctx.offset + index, ctx)
        carry = block[used:n]
        if not data:
            if carry:
                message = f"truncated record: {len(carry)} bytes at the end of the stream"
                raise checker.error(ctx.offset + index, None, message)
            return index
        want = max(ctx.block_bytes, len(carry))  # a record larger than a block: read it whole
        first, index = index, index + len(starts)
        drop = min(len(starts), max(0, ctx.skip - first))
        if drop == len(starts):
            continue
        buf = np.frombuffer(block[:used] + joined + _PAD if joined else block, dtype=np.uint8)
        s, e = np.asarray(starts[drop:], dtype=np.int64), np.asarray(ends[drop:], dtype=np.int64)
        first += ctx.offset + drop
        yield _decode(buf, s, e, first=first, end=ctx.offset + index, ctx=ctx, state=state)


def _decode(
    buf: Array,
    s: Array,
    e: Array,
    *,
    first: int,
    end: int,
    ctx: ReadContext,
    state: _State,
    broken: Array | None = None,
) -> Chunk:
    """The chunk of the records ``buf[s:e]``, the first at position ``first``."""
    checker, n = ctx.checker, len(s)
    odd = np.zeros(n, dtype=bool)
    (fs, fe), (ls, le) = _fields(buf, s, e, odd, (0x0A, 0x12), skip=(0x1A, 0x22, 0x2A))
    feats = _tensor(buf, fs, fe, odd)
    label = _tensor(buf, ls, le, odd) if checker.labelled else None
    if odd.any() and broken is None:
        buf, s, e, broken = _canonicalize(buf, s, e, odd)
        return _decode(buf, s, e, first=first, end=end, ctx=ctx, state=state, broken=broken)
    problems: list[tuple[int, str | None, str]] = []
    ok = np.ones(n, dtype=bool)

    def reject(rows: Array, field: str | None, message: str | Callable[[int], str]) -> None:
        for i in np.flatnonzero(rows):
            problems.append((int(i), field, message(int(i)) if callable(message) else message))
        ok[rows] = False

    reject(odd if broken is None else odd | broken, None, "not a RecordIO-protobuf Record")
    reject(ok & (feats.kind == 0), "features", 'no "values" feature tensor')
    sparse_rows = (feats.ke > feats.ks) | (feats.se > feats.ss)
    if state.sparse is None and ok.any():
        state.sparse = bool(sparse_rows[np.argmax(ok)])
    values, counts = _float_values(buf, feats.kind, feats.vs, feats.ve)
    labels = None
    if label is not None:
        label_values, label_counts = _float_values(buf, label.kind, label.vs, label.ve)
        labels = np.full(n, np.nan, dtype=np.float32)
        has = label_counts > 0
        labels[has] = label_values[(np.cumsum(label_counts) - label_counts)[has]]
    positions = first + np.arange(n, dtype=np.int64)
    if state.sparse:
        keys, key_counts = _values(buf, _VARINT, feats.ks, feats.ke)
        reject(ok & ~sparse_rows & (counts > 0), "features", "dense record in sparse data")
        wrong = ok & (key_counts != counts)
        reject(wrong, "features", lambda i: f"{key_counts[i]} keys for {counts[i]} values")
        with_shape = np.flatnonzero(ok & (feats.se > feats.ss))
        if checker.max_index is None and len(with_shape):
            i = with_shape[0]
            checker.max_index = int(_varints(buf[feats.ss[i] : feats.se[i]])[0]) or None
        indptr = np.concatenate(([0], np.cumsum(counts[ok])))
        indices = keys[np.repeat(ok, key_counts)].view(np.int64)
        data, keep = values[np.repeat(ok, counts)], np.flatnonzero(ok)
        bad = _report(checker, problems, positions)
        return checker.sparse(indptr, indices, data, _take(labels, keep), positions[keep], end, bad)
    reject(ok & sparse_rows, "features", "sparse record in dense data")
    if ok.any():
        i = int(np.argmax(ok))
        checker.fix_width(int(counts[i]), int(positions[i]))
    width = checker.n_features or 0
    reject(
        ok & (counts != width),
        "features",
        lambda i: f"{counts[i]} features where the data has {width}",
    )
    x, keep = values[np.repeat(ok, counts)].reshape(-1, width), np.flatnonzero(ok)
    bad = _report(checker, problems, positions)
    return checker.dense(x, _take(labels, keep), positions[keep], end, bad)


def _take(labels: Array | None, keep: Array) -> Array | None:
    return None if labels is None else labels[keep]


def _report(
    checker: RowChecker, problems: list[tuple[int, str | None, str]], positions: Array
) -> list[int]:
    """Report bad records in order; their positions."""
    bad = []
    for i, field, message in sorted(problems, key=lambda p: p[0]):
        checker.bad(int(positions[i]), field, message)
        bad.append(int(positions[i]))
    return bad


def _canonicalize(buf: Array, s: Array, e: Array, odd: Array) -> tuple[Array, Array, Array, Array]:
    """Re-encode the ``odd`` records after the block; those that are not Records: broken."""
    s, e, size = s.copy(), e.copy(), len(buf) - len(_PAD)
    broken = np.zeros(len(s), dtype=bool)
    extra = []
    for i in np.flatnonzero(odd):
        payload = _canonical(buf[s[i] : e[i]].tobytes())
        broken[i] = payload is None
        extra.append(payload or b"")
        s[i], size = size, size + len(extra[-1])
        e[i] = size
    tail = np.frombuffer(b"".join(extra) + _PAD, dtype=np.uint8)
    return np.concatenate([buf[: len(buf) - len(_PAD)], tail]), s, e, broken
