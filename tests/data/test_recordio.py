"""RecordIO-protobuf: round trips, resume, blocks, pipes, bad input and the wire format itself."""

from __future__ import annotations

import io
import itertools
import os
import struct
import threading
from collections.abc import Generator
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from streamfit.data.checks import RowChecker
from streamfit.data.chunk import (
    Chunk,
    dense_arrays,
    dense_record_batch,
    is_sparse,
    labels_array,
    sparse_arrays,
    sparse_record_batch,
)
from streamfit.data.recordio import read_recordio
from streamfit.data.recordio_writer import write_recordio
from streamfit.data.text import ReadContext
from streamfit.errors import ConfigError, DataError

MAGIC = b"\x0a\x23\xd7\xce"  # 0xced7230a, little-endian


def frame(payload: bytes) -> bytes:
    return MAGIC + struct.pack("<I", len(payload)) + payload + bytes(-len(payload) % 4)


def ld(tag: int, data: bytes) -> bytes:
    """A length-delimited protobuf field (lengths below 128 only: these tests' messages)."""
    assert len(data) < 128
    return bytes([tag, len(data)]) + data


def entry(value: bytes) -> bytes:
    """A ``map<string, Value>`` entry keyed "values"."""
    return ld(0x0A, b"values") + ld(0x12, value)


# One dense record, features [1.0, -2.0], label 3.0, byte by byte from record.proto:
DENSE_RECORD = bytes.fromhex(
    "0a23d7ce 2c000000"  # magic, payload length 44 (a multiple of 4: no padding)
    "0a 16"  # Record.features (1): an entry of 22 bytes
    "0a 06 76616c756573"  # entry.key (1) = "values"
    "12 0c"  # entry.value (2): a Value of 12 bytes
    "12 0a"  # Value.float32_tensor (2): 10 bytes
    "0a 08 0000803f 000000c0"  # Float32Tensor.values (1), packed: 1.0, -2.0
    "12 12"  # Record.label (2): an entry of 18 bytes
    "0a 06 76616c756573 12 08 12 06 0a 04 00004040"  # "values": float32_tensor [3.0]
)

# One sparse record, {1: 0.5, 300: 1.5} of 1000 features, label 1.0:
SPARSE_RECORD = bytes.fromhex(
    "0a23d7ce 35000000"  # magic, payload length 53 (then 3 bytes of padding)
    "0a 1f 0a 06 76616c756573 12 15 12 13"  # features: "values": float32_tensor of 19 bytes
    "0a 08 0000003f 0000c03f"  # values (1): 0.5, 1.5
    "12 03 01 ac02"  # keys (2), packed varints: 1, 300
    "1a 02 e807"  # shape (3): [1000]
    "12 12 0a 06 76616c756573 12 08 12 06 0a 04 0000803f"  # label: [1.0]
    "000000"  # padding
)


@cache
def record_class() -> Any:
    """The protobuf runtime's ``Record`` from the SDK's record.proto: the reference decoder."""
    F = descriptor_pb2.FieldDescriptorProto

    def field(name: str, number: int, type_: int, ref: str = "", repeated: bool = True) -> Any:
        label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
        spec: dict[str, Any] = {"name": name, "number": number, "type": type_, "label": label}
        if ref:
            spec["type_name"] = f".aialgs.data.{ref}"
        elif repeated:
            spec["options"] = {"packed": True}
        return spec

    file = descriptor_pb2.FileDescriptorProto(name="test/record.proto", package="aialgs.data")
    value = file.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    types = [
        ("Float32", F.TYPE_FLOAT, 2),
        ("Float64", F.TYPE_DOUBLE, 3),
        ("Int32", F.TYPE_INT32, 7),
    ]
    for name, type_, number in types:
        keys, shape = field("keys", 2, F.TYPE_UINT64), field("shape", 3, F.TYPE_UINT64)
        file.message_type.add(name=f"{name}Tensor", field=[field("values", 1, type_), keys, shape])
        tensor = field(f"{name.lower()}_tensor", number, F.TYPE_MESSAGE, f"{name}Tensor", False)
        value.field.add(**tensor, oneof_index=0)
    record = file.message_type.add(name="Record")
    for name, number in [("features", 1), ("label", 2)]:
        key = field("key", 1, F.TYPE_STRING, repeated=False)
        value_field = field("value", 2, F.TYPE_MESSAGE, "Value", False)
        entry_type = f"{name.title()}Entry"
        options = {"map_entry": True}
        record.nested_type.add(name=entry_type, field=[key, value_field], options=options)
        record.field.add(**field(name, number, F.TYPE_MESSAGE, f"Record.{entry_type}"))
    record.field.add(**field("uid", 3, F.TYPE_STRING, repeated=False))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def context(labelled: bool = True, **options: Any) -> ReadContext:
    checker_options = {k: options.pop(k) for k in ("on_bad_rows", "n_features") if k in options}
    checker = RowChecker(labelled=labelled, file="x.rec", **checker_options)
    return ReadContext(checker=checker, **{"offset": 0, **options})


def drain(gen: Generator[Chunk, None, int]) -> tuple[list[Chunk], int]:
    """The chunks a reader yields, and the record count it returns."""
    chunks: list[Chunk] = []
    while True:
        try:
            chunks.append(next(gen))
        except StopIteration as stop:
            return chunks, int(stop.value)


def read(
    data: bytes | BinaryIO, labelled: bool = True, **options: Any
) -> tuple[list[Chunk], int, ReadContext]:
    ctx = context(labelled, **options)
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    chunks, count = drain(read_recordio(stream, ctx))
    return chunks, count, ctx


def write(tmp_path: Path, *batches: pa.RecordBatch, **options: Any) -> Path:
    path = tmp_path / "data.rec"
    with path.open("wb") as f:
        assert write_recordio(batches, f, **options) == sum(b.num_rows for b in batches)
    return path


def dense(chunks: list[Chunk]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    x = np.concatenate([dense_arrays(c.batch) for c in chunks])
    labels = [labels_array(c.batch) for c in chunks]
    y = None if labels[0] is None else np.concatenate([y for y in labels if y is not None])
    return x, y, np.concatenate([c.positions for c in chunks])


def to_csr(chunks: list[Chunk]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    for chunk in chunks:
        assert is_sparse(chunk.batch)
        indptr, indices, values = sparse_arrays(chunk.batch)
        rows += [(indices[a:b], values[a:b]) for a, b in itertools.pairwise(indptr)]
    indptr = np.concatenate([[0], np.cumsum([len(i) for i, _ in rows])])
    labels = np.concatenate([labels_array(c.batch) for c in chunks])
    flat = [np.concatenate([r[k] for r in rows]) for k in (0, 1)]
    return indptr, flat[0], flat[1], labels


def random_sparse(rng: np.random.Generator, n: int, dim: int) -> pa.RecordBatch:
    counts = rng.integers(0, 6, n)
    counts[1] = 0  # an empty row
    indices = np.concatenate([np.sort(rng.choice(dim, k, replace=False)) for k in counts])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    values = rng.normal(size=len(indices)).astype(np.float32)
    return sparse_record_batch(indptr, indices, values, rng.integers(0, 2, n).astype(np.float32))


# -- round trips -----------------------------------------------------------------------------


def test_dense_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 7)).astype(np.float32)
    y = rng.normal(size=50).astype(np.float32)
    path = write(tmp_path, dense_record_batch(x[:20], y[:20]), dense_record_batch(x[20:], y[20:]))
    with path.open("rb") as f:
        chunks, count, ctx = read(f)
    got_x, got_y, positions = dense(chunks)
    assert count == 50
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    np.testing.assert_array_equal(positions, np.arange(50))
    assert chunks[-1].end == 50
    assert ctx.checker.n_features == 7


def test_sparse_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    batch = random_sparse(rng, 40, dim=100_000)  # indices of 1 to 3 varint bytes
    path = write(tmp_path, batch, n_features=100_000)
    with path.open("rb") as f:
        chunks, count, ctx = read(f)
    assert count == 40
    indptr, indices, values, labels = to_csr(chunks)
    want = sparse_arrays(batch)
    for got, expected in zip((indptr, indices, values), want, strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(labels, labels_array(batch))
    assert ctx.checker.max_index == 100_000  # from the records' shape


def test_sparse_shape_defaults_to_largest_index(tmp_path: Path) -> None:
    batch = sparse_record_batch(np.array([0, 2]), np.array([3, 9]), np.ones(2, np.float32), None)
    path = write(tmp_path, batch)
    _, _, ctx = read(path.read_bytes(), labelled=False)
    assert ctx.checker.max_index == 10


def test_unlabelled_rows(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = write(tmp_path, dense_record_batch(x, None))
    chunks, count, _ = read(path.read_bytes(), labelled=False)
    got_x, got_y, _ = dense(chunks)
    assert count == 4 and got_y is None
    np.testing.assert_array_equal(got_x, x)
    with pytest.raises(DataError, match="record 1, label: missing"):
        read(path.read_bytes(), labelled=True)


def test_labels_ignored_when_unlabelled(tmp_path: Path) -> None:
    x = np.ones((5, 2), np.float32)
    path = write(tmp_path, dense_record_batch(x, np.arange(5, dtype=np.float32)))
    chunks, _, _ = read(path.read_bytes(), labelled=False)
    assert dense(chunks)[1] is None
    assert chunks[0].batch.schema.names == ["features"]


# -- resume, blocks, pipes ---------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("skip", [0, 1, 17, 39, 40, 45])
def test_skip_resumes_at_a_record(tmp_path: Path, sparse: bool, skip: int) -> None:
    rng = np.random.default_rng(2)
    if sparse:
        batch = random_sparse(rng, 40, dim=500)
    else:
        batch = dense_record_batch(rng.normal(size=(40, 3)).astype(np.float32), np.arange(40.0))
    data = write(tmp_path, batch).read_bytes()
    all_chunks, _, _ = read(data)
    chunks, count, _ = read(data, offset=100, skip=skip, block_bytes=64)
    assert count == 40  # every record of the file, the skipped ones too
    positions = np.concatenate([c.positions for c in chunks]) if chunks else np.empty(0)
    np.testing.assert_array_equal(positions, 100 + np.arange(skip, 40))
    if skip < 40:
        whole = all_chunks[0].batch.slice(skip)
        assert pa.Table.from_batches([c.batch for c in chunks]).equals(
            pa.Table.from_batches([whole])
        )


def test_small_blocks_make_many_chunks(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 20)).astype(np.float32)  # records of 124 bytes
    data = write(tmp_path, dense_record_batch(x, np.zeros(30, np.float32))).read_bytes()
    assert len(data) == 30 * 124
    chunks, count, _ = read(data, offset=5, block_bytes=50)  # smaller than a record
    assert count == 30 and len(chunks) == 30
    starts = [int(c.positions[0]) for c in chunks]
    assert starts == [c.end - c.n_rows for c in chunks] == list(range(5, 35))
    chunks, _, _ = read(data, block_bytes=300)
    assert len(chunks) > 5
    np.testing.assert_array_equal(dense(chunks)[0], x)
    np.testing.assert_array_equal(dense(chunks)[2], np.arange(30))


def test_reads_a_pipe(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    data = write(tmp_path, dense_record_batch(x, np.ones(200, np.float32))).read_bytes()
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as out:
            for i in range(0, len(data), 77):  # pieces that cut records and headers
                out.write(data[i : i + 77])
                out.flush()

    thread = threading.Thread(target=feed)
    thread.start()
    with os.fdopen(r, "rb", buffering=0) as pipe:  # raw: short reads
        chunks, count, _ = read(pipe, block_bytes=1000)
    thread.join()
    assert count == 200
    np.testing.assert_array_equal(dense(chunks)[0], x)


# -- bad input ---------------------------------------------------------------------------------


def five_records(tmp_path: Path) -> bytes:
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    data = write(tmp_path, dense_record_batch(x, np.zeros(5, np.float32))).read_bytes()
    assert len(data) == 5 * 56
    return data


@pytest.mark.parametrize("cut", [1, 30, 50, 52])  # of 56 bytes: in the payload, in the header
def test_truncated_file_names_the_record(tmp_path: Path, cut: int) -> None:
    data = five_records(tmp_path)
    with pytest.raises(DataError, match="truncated") as err:
        read(data[:-cut], offset=10, block_bytes=32)
    assert err.value.row == 5 and err.value.source == "x.rec" and "record 5" in str(err.value)


def test_bad_magic_names_the_record(tmp_path: Path) -> None:
    data = bytearray(five_records(tmp_path))
    size = len(data) // 5
    data[2 * size] ^= 0xFF  # the third record's magic number
    with pytest.raises(DataError, match="record 3: bad magic number"):
        read(bytes(data))
    with pytest.raises(DataError, match="record 1: bad magic number"):
        read(b"label,x\n1,2\n")


def test_multi_part_records_are_refused() -> None:
    part = bytes(4)
    data = MAGIC + struct.pack("<I", len(part) | 1 << 29) + part
    with pytest.raises(DataError, match="record 1: multi-part"):
        read(data)


def test_nan_value_is_an_error_or_skipped(tmp_path: Path) -> None:
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    x[2, 1] = np.nan
    data = write(tmp_path, dense_record_batch(x, np.zeros(5, np.float32))).read_bytes()
    with pytest.raises(DataError, match="record 3, feature 2: non-finite"):
        read(data)
    chunks, count, ctx = read(data, on_bad_rows="skip")
    assert count == 5 and ctx.checker.skipped == 1
    assert [c.bad.tolist() for c in chunks] == [[2]]
    np.testing.assert_array_equal(dense(chunks)[2], [0, 1, 3, 4])


def test_sparse_nan_and_out_of_range_index(tmp_path: Path) -> None:
    indptr, indices = np.array([0, 1, 2, 3]), np.array([0, 1, 7])
    values = np.array([1, np.nan, 1], np.float32)
    batch = sparse_record_batch(indptr, indices, values, np.zeros(3, np.float32))
    data = write(tmp_path, batch, n_features=5).read_bytes()
    with pytest.raises(DataError, match="record 2, feature index 1: non-finite"):
        read(data)
    chunks, _, ctx = read(data, on_bad_rows="skip")
    assert ctx.checker.skipped == 2 and chunks[0].bad.tolist() == [1, 2]  # 7 >= shape 5


def test_records_of_the_other_kind_are_bad_rows(tmp_path: Path) -> None:
    dense_part = dense_record_batch(np.ones((2, 3), np.float32), np.zeros(2, np.float32))
    sparse_part = sparse_record_batch(np.array([0, 1]), np.array([2]), np.ones(1, np.float32), None)
    data = write(tmp_path, dense_part, sparse_part, dense_part).read_bytes()
    with pytest.raises(DataError, match="record 3, features: sparse record in dense data"):
        read(data, labelled=False)
    chunks, count, ctx = read(data, labelled=False, on_bad_rows="skip")
    assert count == 5 and ctx.checker.skipped == 1 and chunks[0].bad.tolist() == [2]
    wide = dense_record_batch(np.ones((1, 4), np.float32), None)
    data = write(tmp_path, dense_part, wide).read_bytes()
    with pytest.raises(DataError, match="record 3, features: 4 features where the data has 3"):
        read(data, labelled=False)


def test_undecodable_record_is_a_bad_row() -> None:
    records = [frame(b"\xff\xff\xff"), DENSE_RECORD, frame(b"")]
    with pytest.raises(
        DataError, match="record 1: not a Record, or not laid out as protobuf writes one"
    ):
        read(b"".join(records))
    chunks, count, ctx = read(b"".join(records), on_bad_rows="skip")
    assert count == 3 and ctx.checker.skipped == 2 and chunks[0].bad.tolist() == [0, 2]


# -- the wire format ---------------------------------------------------------------------------


def test_hand_encoded_dense_record_decodes() -> None:
    chunks, count, _ = read(DENSE_RECORD)
    x, y, _ = dense(chunks)
    assert count == 1
    np.testing.assert_array_equal(x, [[1.0, -2.0]])
    np.testing.assert_array_equal(y, [3.0])


def test_hand_encoded_sparse_record_decodes() -> None:
    chunks, count, ctx = read(SPARSE_RECORD)
    _, indices, values, labels = to_csr(chunks)
    assert count == 1 and ctx.checker.max_index == 1000
    np.testing.assert_array_equal(indices, [1, 300])
    np.testing.assert_array_equal(values, [0.5, 1.5])
    np.testing.assert_array_equal(labels, [1.0])


def test_encoder_writes_the_hand_encoded_bytes() -> None:
    out = io.BytesIO()
    write_recordio([dense_record_batch(np.array([[1.0, -2.0]]), np.array([3.0]))], out)
    assert out.getvalue() == DENSE_RECORD
    out = io.BytesIO()
    batch = sparse_record_batch(np.array([0, 2]), np.array([1, 300]), np.array([0.5, 1.5]), [1.0])
    write_recordio([batch], out, n_features=1000)
    assert out.getvalue() == SPARSE_RECORD


def test_encoder_agrees_with_the_protobuf_runtime(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    data = write(tmp_path, random_sparse(rng, 30, dim=1 << 40), n_features=1 << 40).read_bytes()
    p, records = 0, 0
    while p < len(data):
        size = struct.unpack_from("<I", data, p + 4)[0]
        payload = data[p + 8 : p + 8 + size]
        record = record_class()()
        record.ParseFromString(payload)
        assert record.SerializeToString() == payload
        assert list(record.features["values"].float32_tensor.shape) == [1 << 40]
        p, records = p + 8 + size + (-size % 4), records + 1
    assert records == 30


def test_sdk_float64_and_int32_tensors() -> None:
    """What the SageMaker SDK writes for float64 features and integer labels."""
    Record = record_class()
    records = []
    for i in range(4):
        record = Record()
        record.features["values"].float64_tensor.values.extend([i + 0.5, -i])
        record.label["values"].int32_tensor.values.append(i - 2)
        records.append(frame(record.SerializeToString()))
    chunks, _, _ = read(b"".join(records))
    x, y, _ = dense(chunks)
    np.testing.assert_array_equal(x, [[0.5, 0], [1.5, -1], [2.5, -2], [3.5, -3]])
    np.testing.assert_array_equal(y, [-2, -1, 0, 1])
    sparse = Record()
    tensor = sparse.features["values"].int32_tensor
    tensor.values.extend([7, -1])
    tensor.keys.extend([2, 2**35])
    tensor.shape.append(2**36)
    chunks, _, _ = read(frame(sparse.SerializeToString()), labelled=False)
    _, indices, values = sparse_arrays(chunks[0].batch)
    np.testing.assert_array_equal(indices, [2, 2**35])
    np.testing.assert_array_equal(values, [7, -1])


def test_tensor_types_mixed_in_a_block() -> None:
    Record = record_class()
    records = []
    for i, kind in enumerate(["float32", "int32", "float64", "int32", "float32"]):
        record = Record(uid=f"r{i}")  # a field the reader skips
        getattr(record.features["values"], f"{kind}_tensor").values.extend([i, -i])
        getattr(record.label["values"], f"{kind}_tensor").values.append(i)
        records.append(frame(record.SerializeToString()))
    chunks, count, _ = read(b"".join(records))
    x, y, _ = dense(chunks)
    assert count == 5
    np.testing.assert_array_equal(x, [[i, -i] for i in range(5)])
    np.testing.assert_array_equal(y, np.arange(5))


def test_records_laid_out_otherwise_are_bad_rows() -> None:
    """Valid protobuf no serializer writes for record.proto: not read, never misread."""
    unpacked = b"".join(b"\x0d" + struct.pack("<f", v) for v in (4.0, 5.0))
    other_key = ld(0x0A, ld(0x0A, b"other") + ld(0x12, b""))
    records = [
        frame(ld(0x0A, entry(ld(0x12, unpacked)))),  # unpacked floats
        frame(other_key + DENSE_RECORD[8:]),  # two feature entries
        frame(ld(0x0A, entry(ld(0x12, b"\x0a\x04" + bytes(4) + b"\x0a\x00")))),  # values twice
        DENSE_RECORD,
    ]
    chunks, count, ctx = read(b"".join(records), on_bad_rows="skip")
    assert count == 4 and ctx.checker.skipped == 3
    np.testing.assert_array_equal(dense(chunks)[0], [[1, -2]])
    with pytest.raises(
        DataError, match="record 1: not a Record, or not laid out as protobuf writes one"
    ):
        read(b"".join(records))


def test_a_chunk_of_bad_records_only() -> None:
    data = frame(b"\xff") + DENSE_RECORD + frame(b"\xff")
    chunks, count, ctx = read(data, on_bad_rows="skip", block_bytes=8)
    assert count == 3 and ctx.checker.skipped == 2
    assert chunks[0].n_rows == 1 and chunks[0].bad[0] == 0  # held back until the kind is known
    assert np.concatenate([c.bad for c in chunks]).tolist() == [0, 2]
    assert chunks[-1].end == 3


def test_a_file_of_bad_records_only() -> None:
    chunks, count, ctx = read(frame(b"\xff") * 3, on_bad_rows="skip", n_features=4)
    assert (chunks, count, ctx.checker.skipped) == ([], 3, 3)  # no chunk of a guessed kind


def test_writer_keeps_the_first_batch_width_unless_told(tmp_path: Path) -> None:
    first = sparse_record_batch(np.array([0, 1]), np.array([3]), np.ones(1, np.float32), None)
    later = sparse_record_batch(np.array([0, 1]), np.array([9]), np.ones(1, np.float32), None)
    with (tmp_path / "x.rec").open("wb") as f, pytest.raises(ConfigError, match="--feature-dim"):
        write_recordio([first, later], f)
    with (tmp_path / "y.rec").open("wb") as f:
        assert write_recordio([first, later], f, n_features=10) == 2
