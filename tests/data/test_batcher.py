"""Batcher: fixed-size batches, where each ends and what it skipped, resume, sparse batches,
and the reader thread (early exit, errors)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import streamfit.data.batcher as batcher_module
from streamfit.core.batch import CSR, Batch
from streamfit.data.batcher import Batcher
from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk, dense_record_batch
from streamfit.data.source import Source, SourceOptions, open_source
from streamfit.errors import ConfigError, DataError
from tests.data.conftest import (
    csr_to_dense,
    dense_batch,
    read,
    sparse_batch,
    write,
    write_lines,
)

pytestmark = pytest.mark.timeout(30)  # a stuck reader thread fails the test, not the run


def run(uri: str | Path | Source, batch_size: int, **kwargs: object) -> list[Batch]:
    source = uri if isinstance(uri, Source) else open_source(str(uri))
    return list(Batcher(source, batch_size, **kwargs))  # type: ignore[arg-type]


def source(uri: str | Path, **options: object) -> Source:
    return open_source(str(uri), SourceOptions(**options))  # type: ignore[arg-type]


def features(batches: list[Batch]) -> np.ndarray:
    return torch.cat([b.dense_features() for b in batches]).numpy()


def labels(batches: list[Batch]) -> np.ndarray:
    return torch.cat([b.labels for b in batches if b.labels is not None]).numpy()


def shape(batches: list[Batch]) -> list[tuple[int, int, int]]:
    """``(rows, end_position, skipped)`` of each batch."""
    return [(b.n_rows, b.end_position, b.skipped) for b in batches]


@pytest.mark.parametrize("block_bytes", [1 << 20, 64])
def test_fixed_size_batches_and_a_smaller_last_one(tmp_path: Path, block_bytes: int) -> None:
    data = dense_batch(23, 3)
    path = write(tmp_path / "d.csv", data)
    batches = run(source(path, block_bytes=block_bytes), 5)
    assert shape(batches) == [(5, 5, 0), (5, 10, 0), (5, 15, 0), (5, 20, 0), (3, 23, 0)]
    np.testing.assert_array_equal(features(batches), read(path).x)
    np.testing.assert_array_equal(labels(batches), read(path).labels)
    assert all(b.features.dtype == torch.float32 and not b.is_sparse for b in batches)


def test_rows_a_multiple_of_the_batch_size(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", dense_batch(20, 3))
    assert shape(run(path, 5)) == [(5, 5, 0), (5, 10, 0), (5, 15, 0), (5, 20, 0)]


def test_batch_larger_than_the_data(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", dense_batch(3, 3))
    assert shape(run(path, 100)) == [(3, 3, 0)]


def test_each_epoch_gives_the_same_batches(tmp_path: Path) -> None:
    batcher = Batcher(source(write(tmp_path / "d.csv", dense_batch(17, 3)), block_bytes=50), 4)
    first, second = list(batcher), list(batcher)
    assert shape(first) == shape(second)
    np.testing.assert_array_equal(features(first), features(second))


def test_unlabelled_batches_have_no_labels(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.csv", ["1,2", "3,4", "5,6"])
    batches = run(source(path, labelled=False), 2)
    assert [b.labels for b in batches] == [None, None]
    assert features(batches).tolist() == [[1, 2], [3, 4], [5, 6]]


G, B = "1,2,3", "1,x,3"  # a good and a bad CSV row


def expected_shape(lines: list[str], batch_size: int, skip: int = 0) -> list[tuple[int, int, int]]:
    """What the batches of ``lines`` must be: ``batch_size`` good rows each; a batch ends
    after its last row (the last batch: at the end of the data); it counts the bad rows since
    the previous batch's end."""
    good = [i for i, line in enumerate(lines) if line == G and i >= skip]
    bad = [i for i, line in enumerate(lines) if line == B and i >= skip]
    out, start = [], skip
    for k in range(0, len(good), batch_size):
        rows = good[k : k + batch_size]
        end = len(lines) if k + batch_size >= len(good) else rows[-1] + 1
        out.append((len(rows), end, sum(start <= p < end for p in bad)))
        start = end
    return out


BAD_ROW_LAYOUTS = {
    # bad right after a full batch, between batches, and at the very end
    "after a full batch": [G] * 4 + [B] + [G] * 4 + [B, "", G, G, B, B],
    "after the last full batch": [G] * 8 + [B, B],
    "first rows bad": [B, B] + [G] * 5 + [""],
    "runs of bad rows": [G, B, B, B, G, G, B, G, B, B, G, G, G, G, B, G],
}


@pytest.mark.parametrize("block_bytes", [1 << 20, 8, 30])
@pytest.mark.parametrize("layout", BAD_ROW_LAYOUTS)
def test_end_positions_and_skipped_counts_with_bad_rows(
    tmp_path: Path, layout: str, block_bytes: int
) -> None:
    lines = BAD_ROW_LAYOUTS[layout]
    path = write_lines(tmp_path / "d.csv", lines)
    batches = run(source(path, on_bad_rows="skip", block_bytes=block_bytes), 4)
    assert shape(batches) == expected_shape(lines, 4)
    assert sum(b.skipped for b in batches) == lines.count(B)
    assert features(batches).tolist() == [[2, 3]] * lines.count(G)


@pytest.mark.parametrize("layout", BAD_ROW_LAYOUTS)
def test_resume_after_each_batch_gives_exactly_the_remaining_batches(
    tmp_path: Path, layout: str
) -> None:
    lines = BAD_ROW_LAYOUTS[layout]
    path = write_lines(tmp_path / "d.csv", lines)
    src = source(path, on_bad_rows="skip", block_bytes=10)
    batches = run(src, 3)
    for i, batch in enumerate(batches):
        rest = run(src, 3, skip=batch.end_position, n_features=2)
        assert shape(rest) == shape(batches[i + 1 :])
        assert shape(rest) == expected_shape(lines, 3, skip=batch.end_position)
        if rest:
            np.testing.assert_array_equal(features(rest), features(batches[i + 1 :]))
            np.testing.assert_array_equal(labels(rest), labels(batches[i + 1 :]))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_resume_across_files(tmp_path: Path, fmt: str) -> None:
    for i, n in enumerate([7, 5, 9]):
        write(
            tmp_path / "d" / f"part-{i}.{fmt}", dense_batch(n, 3, offset=10 * i), row_group_size=2
        )
    src = source(tmp_path / "d", block_bytes=40)
    batches = run(src, 4)
    assert [b.end_position for b in batches] == [4, 8, 12, 16, 20, 21]
    for k in [4, 8, 12]:
        rest = run(src, 4, skip=k, n_features=3)
        done = next(i for i, b in enumerate(batches) if b.end_position == k) + 1
        np.testing.assert_array_equal(features(rest), features(batches[done:]))
        assert shape(rest) == shape(batches[done:])


@pytest.mark.parametrize("block_bytes", [1 << 20, 60])
def test_sparse_batches_hold_the_rows_in_csr_form(tmp_path: Path, block_bytes: int) -> None:
    data = sparse_batch(37, d=50, nnz=3)
    path = write(tmp_path / "d.libsvm", data)
    batches = run(source(path, block_bytes=block_bytes), 8, n_features=50)
    assert [b.n_rows for b in batches] == [8, 8, 8, 8, 5]
    expected = read(path)
    indptr, indices, values = expected.csr
    first = 0
    for b in batches:
        assert isinstance(b.features, CSR) and b.features.n_cols == 50
        last = first + b.n_rows
        lo, hi = indptr[first], indptr[last]
        np.testing.assert_array_equal(b.features.indptr.numpy(), indptr[first : last + 1] - lo)
        np.testing.assert_array_equal(b.features.indices.numpy(), indices[lo:hi])
        np.testing.assert_array_equal(b.features.values.numpy(), values[lo:hi])
        np.testing.assert_array_equal(b.labels.numpy(), expected.labels[first:last])
        first = last
    np.testing.assert_array_equal(features(batches), csr_to_dense(*expected.csr, 50))


def test_sparse_batches_with_bad_rows(tmp_path: Path) -> None:
    lines = ["1 0:1", "1 99:1", "0 1:2 2:3", "0 3:1", "1 x", "1 4:1"]
    path = write_lines(tmp_path / "d.libsvm", lines)
    batches = run(source(path, on_bad_rows="skip", max_index=50), 2, n_features=50)
    assert shape(batches) == [(2, 3, 1), (2, 6, 1)]
    assert batches[0].features.indptr.tolist() == [0, 1, 3]
    assert batches[1].features.indices.tolist() == [3, 4]


def test_sparse_data_needs_n_features(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.libsvm", ["1 0:1"])
    with pytest.raises(ConfigError, match="sparse data needs feature_dim"):
        run(path, 2)


def test_dense_and_sparse_files_in_one_source_is_a_config_error(tmp_path: Path) -> None:
    write_lines(tmp_path / "d" / "a.csv", ["1,2,3"])
    write_lines(tmp_path / "d" / "b.libsvm", ["1 0:1"])
    with pytest.raises(ConfigError, match="mixes dense and sparse rows"):
        run(tmp_path / "d", 2)


def test_n_features_is_checked_against_the_data(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "train.csv", ["1,2,3"])
    with pytest.raises(DataError, match=r"train\.csv, line 1"):
        run(path, 2, n_features=5)


def test_batch_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be positive"):
        Batcher(open_source(str(write_lines(tmp_path / "d.csv", [G]))), 0)


# -- the reader thread ---------------------------------------------------------------------


def reader_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "streamfit-reader" and t.is_alive()}


@pytest.mark.parametrize("how", ["break", "close"])
def test_stopping_early_ends_the_reader_promptly(tmp_path: Path, how: str) -> None:
    path = write(tmp_path / "d.csv", dense_batch(5000, 3))
    before = reader_threads()
    batcher = Batcher(source(path, block_bytes=256), 1, prefetch_bytes=1)  # the reader will block
    started = time.monotonic()
    if how == "break":
        for _ in batcher:
            break
    else:
        batches = iter(batcher)
        next(batches)
        next(batches)
        batches.close()  # type: ignore[attr-defined]
    assert time.monotonic() - started < 5
    assert reader_threads() <= before


class FailingSource(Source):
    """One chunk of two rows, then an error."""

    def __init__(self, error: Exception) -> None:
        super().__init__("failing", SourceOptions())
        self.error = error

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        x = np.arange(4, dtype=np.float32).reshape(2, 2)
        yield Chunk(dense_record_batch(x, np.ones(2)), np.arange(2), 2)
        raise self.error


def test_an_error_in_the_reader_is_raised_in_the_consumer_as_is() -> None:
    error = DataError("not a number", source="train.csv", row=3, field="column 2")
    received = []
    with pytest.raises(DataError) as info:
        for batch in Batcher(FailingSource(error), 1):
            received.append(batch)
    assert info.value is error
    assert len(received) == 1  # the rows before the error came through first


def test_a_bad_row_in_a_file_fails_the_iteration_naming_its_line(tmp_path: Path) -> None:
    lines = [G] * 30 + [B] + [G] * 5
    path = write_lines(tmp_path / "train.csv", lines)
    before = reader_threads()
    received = []
    with pytest.raises(DataError, match=r"train\.csv, line 31, column 2: could not parse 'x'"):
        for batch in Batcher(source(path, block_bytes=16), 4):
            received.append(batch)
    assert sum(b.n_rows for b in received) <= 30
    assert reader_threads() <= before


# -- the reader thread ends with its iteration, on every way out ------------------------------


class ConsumerFailed(Exception):
    pass


@pytest.mark.parametrize("error", [ConsumerFailed, KeyboardInterrupt])
def test_an_error_in_the_consumer_joins_the_reader_before_it_propagates(
    tmp_path: Path, error: type[BaseException]
) -> None:
    path = write(tmp_path / "d.csv", dense_batch(5000, 3))
    before = reader_threads()
    with pytest.raises(error):
        for _ in Batcher(source(path, block_bytes=256), 1, prefetch_bytes=1):
            assert reader_threads() - before  # the reader is running, waiting for room
            raise error
    assert reader_threads() <= before


def test_an_abandoned_iteration_is_stopped_at_exit(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", dense_batch(5000, 3))
    before = reader_threads()
    batches = iter(Batcher(source(path, block_bytes=256), 1, prefetch_bytes=1))
    next(batches)  # started, never closed, still referenced
    assert reader_threads() - before
    batcher_module._stop_abandoned_readers()  # what atexit runs before finalizing
    assert reader_threads() <= before
    assert not batcher_module._Reader.live


class StuckSource(Source):
    """A read that waits on something its stop event does not reach (a socket, say)."""

    def __init__(self) -> None:
        super().__init__("stuck", SourceOptions())
        self.release = threading.Event()

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        x = np.arange(4, dtype=np.float32).reshape(2, 2)
        yield Chunk(dense_record_batch(x, np.ones(2)), np.arange(2), 2)
        self.release.wait()


def test_a_read_nothing_can_interrupt_is_waited_for_then_left(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(batcher_module, "JOIN_SECONDS", 0.2)
    stuck = StuckSource()
    before = reader_threads()
    started = time.monotonic()
    for _ in Batcher(stuck, 1):
        break
    assert time.monotonic() - started < 5
    assert "still blocked in a read" in caplog.text
    assert reader_threads() - before  # left to end with the process
    stuck.release.set()
    for thread in reader_threads() - before:
        thread.join(5)
    assert reader_threads() <= before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_reader_waiting_on_an_idle_pipe_stops_and_is_joined(tmp_path: Path) -> None:
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    opened = threading.Event()
    done = threading.Event()

    def writer() -> None:  # some rows, then the pipe stays open with nothing more to say
        with open(fifo, "wb") as f:
            f.write(b"1,2,3\n" * 8)
            f.flush()
            opened.set()
            done.wait(20)

    feeder = threading.Thread(target=writer, daemon=True)
    feeder.start()
    before = reader_threads()
    try:
        started = time.monotonic()
        for batch in Batcher(open_source(str(fifo)), 4):
            assert batch.n_rows == 4
            break  # the reader is now blocked waiting for the pipe's next bytes
        assert time.monotonic() - started < 5
        assert reader_threads() <= before
    finally:
        done.set()
        feeder.join(5)
