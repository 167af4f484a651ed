"""Helpers for the data tests: small generated data written in each format, and whole reads
gathered into arrays.

The test modules import these functions (``from tests.data.conftest import ...``) rather than
taking them as fixtures: they are plain functions of their arguments.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfit.data.chunk import (
    Chunk,
    dense_arrays,
    is_sparse,
    labels_array,
    sparse_arrays,
)
from streamfit.data.source import SourceOptions, open_source
from streamfit.data.writers import WRITERS
from streamfit.datagen import linear_task, sparse_click_task
from streamfit.errors import DataError

FORMATS = ["csv", "parquet", "jsonl", "libsvm"]
TEXT_FORMATS = ["csv", "jsonl", "libsvm"]
SPARSE_FORMATS = ["parquet", "jsonl", "libsvm"]
EXTENSIONS = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl", "libsvm": ".libsvm"}


def dense_batch(n: int = 40, d: int = 3, seed: int = 0, offset: int = 0) -> pa.RecordBatch:
    """``n`` labelled dense rows of ``d`` features (regression: labels with all their digits)."""
    return next(linear_task(d, kind="regression", seed=seed).blocks(n, offset=offset))


def sparse_batch(n: int = 40, d: int = 50, nnz: int = 4, seed: int = 0) -> pa.RecordBatch:
    """``n`` labelled sparse rows with ``nnz`` indices below ``d`` each."""
    return next(sparse_click_task(d, nnz=nnz, seed=seed).blocks(n))


def unlabelled(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch.drop_columns(["label"])


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    """A text file of ``lines``, each ended by a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def write(
    path: Path,
    batches: pa.RecordBatch | Iterable[pa.RecordBatch],
    fmt: str | None = None,
    *,
    row_group_size: int | None = None,
) -> Path:
    """Write with ``streamfit.data.writers`` in ``fmt`` (else the extension's format); a ``.gz``
    path is gzipped. Parquet with ``row_group_size`` is written by pyarrow, to get many groups.
    """
    batches = [batches] if isinstance(batches, pa.RecordBatch) else list(batches)
    name = path.name.removesuffix(".gz")
    fmt = fmt or next(f for f, ext in EXTENSIONS.items() if name.endswith(ext))
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet" and row_group_size is not None:
        pq.write_table(pa.Table.from_batches(batches), path, row_group_size=row_group_size)
        return path
    with gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb") as f:
        WRITERS[fmt](batches, f)
    return path


@dataclass(frozen=True)
class Read:
    """The chunks of one read, and their rows put together."""

    chunks: list[Chunk]

    @property
    def sparse(self) -> bool:
        return is_sparse(self.chunks[0].batch)

    @property
    def x(self) -> np.ndarray:
        """Dense features, ``(n, d)``."""
        return np.concatenate([dense_arrays(c.batch) for c in self.chunks])

    @property
    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sparse features: ``(indptr, indices, values)``."""
        return concat_csr([sparse_arrays(c.batch) for c in self.chunks])

    @property
    def labels(self) -> np.ndarray | None:
        parts = [labels_array(c.batch) for c in self.chunks]
        if parts[0] is None:
            assert all(p is None for p in parts)
            return None
        return np.concatenate([p for p in parts if p is not None])

    @property
    def positions(self) -> np.ndarray:
        return np.concatenate([c.positions for c in self.chunks])

    @property
    def bad(self) -> np.ndarray:
        return np.concatenate([c.bad for c in self.chunks])

    @property
    def end(self) -> int:
        return self.chunks[-1].end

    def matrix(self, width: int) -> np.ndarray:
        """The features as a dense ``(n, width)`` matrix, whatever the layout."""
        if not self.sparse:
            return self.x
        return csr_to_dense(*self.csr, width)


def read(uri: str | Path, *, skip: int = 0, n_features: int | None = None, **options: Any) -> Read:
    """Every chunk of ``open_source(uri, SourceOptions(**options)).read(skip, n_features)``."""
    source = open_source(str(uri), SourceOptions(**options))
    return Read(list(source.read(skip, n_features)))


def concat_csr(
    parts: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    indptrs, indices, values, total = [np.zeros(1, np.int64)], [], [], 0
    for indptr, idx, val in parts:
        indptrs.append(indptr[1:] + total)
        indices.append(idx)
        values.append(val)
        total += int(indptr[-1])
    return np.concatenate(indptrs), np.concatenate(indices), np.concatenate(values)


def csr_to_dense(
    indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, width: int
) -> np.ndarray:
    out = np.zeros((len(indptr) - 1, width), dtype=np.float32)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    np.add.at(out, (rows, indices), values)
    return out


def batch_matrix(batch: pa.RecordBatch, width: int) -> np.ndarray:
    """A record batch's features as a dense matrix."""
    if is_sparse(batch):
        return csr_to_dense(*sparse_arrays(batch), width)
    return dense_arrays(batch)


def assert_same_rows(got: Read, batch: pa.RecordBatch, width: int | None = None) -> None:
    """``got`` holds exactly the rows of ``batch``: labels, and features in its layout (or as a
    dense matrix of ``width`` columns when the layouts differ, as for libsvm of dense rows)."""
    expected_labels = labels_array(batch)
    if expected_labels is None:
        assert got.labels is None
    else:
        np.testing.assert_array_equal(got.labels, expected_labels)
    if width is None and is_sparse(batch):
        for g, e in zip(got.csr, sparse_arrays(batch), strict=True):
            np.testing.assert_array_equal(g, e)
    elif width is None:
        np.testing.assert_array_equal(got.x, dense_arrays(batch))
    else:
        np.testing.assert_array_equal(got.matrix(width), batch_matrix(batch, width))


def expect_data_error(
    uri: str | Path,
    *,
    row: int,
    field: str | None,
    message: str,
    row_label: str = "line",
    file: str | None = None,
    skip: int = 0,
    **options: Any,
) -> DataError:
    """Reading ``uri`` fails on ``row`` (1-based, of the file) and ``field``; the error says
    all of it: ``"<file>, line <row>, <field>: ...<message>..."``. ``file`` is the name of the
    file at fault when ``uri`` names several."""
    name = file or Path(uri).name
    with pytest.raises(DataError) as info:
        read(uri, skip=skip, **options)
    err = info.value
    text = str(err)
    assert Path(err.source).name == name, text
    where = f"{name}, {row_label} {row}" + ("" if field is None else f", {field}")
    assert f"{where}: " in text, text
    assert message in text, text
    assert (err.row, err.field, err.row_label) == (row, field, row_label)
    assert text.count(name) == 1, text  # said once, not nested in the message
    return err


# -- message streams: a real redis-server, and moto's Kinesis server, both on loopback ------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server started for the test session (no persistence), its URL."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian: apt install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def kinesis_endpoint() -> Iterator[str]:
    """moto's standalone server (the closest to Kinesis that runs here), its endpoint URL;
    fake credentials in the environment, as boto3 needs some."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
