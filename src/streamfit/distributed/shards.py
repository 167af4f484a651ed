"""Disjoint shards of a training source, one per worker.

=====================================  =================================================
input                                  shards
=====================================  =================================================
a folder or glob of >= N files         whole files, balanced by size
one Parquet file                       row ranges, on row-group boundaries when the file
                                       has at least N row groups (else rows are split
                                       evenly and neighbours decode a shared group)
one uncompressed CSV/JSONL/libsvm/text byte ranges, each moved to the next line start
=====================================  =================================================

Each shard is a :class:`~streamfit.data.source.Source` whose positions count from 0 within
the shard, so a worker's position is where its own ``Batcher`` resumes. Byte ranges follow
Hadoop's text splits: a shard owns the lines that start inside its range, so no line is
read twice or lost, and no shard needs to read another's bytes (a row stride would make
every worker read the whole file). Pipes, queries, compressed single files and RecordIO
(whose records cannot be found from an arbitrary byte) are refused with a clear error.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
from collections.abc import Iterator
from typing import BinaryIO

import fsspec
import pyarrow.parquet as pq
from fsspec.utils import infer_compression

from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.parquet import read_parquet
from streamfit.data.series_columns import is_long
from streamfit.data.source import (
    FileSource,
    PipeSource,
    Source,
    SourceOptions,
    detect_format,
    reader_for,
)
from streamfit.errors import ConfigError

__all__ = ["ByteRangeSource", "RowRangeSource", "describe", "split_source"]

_TEXT_FORMATS = ("csv", "jsonl", "libsvm", "text")


def split_source(source: Source, n: int) -> list[Source]:
    """``n`` disjoint shards that together hold every row of ``source``."""
    if n < 1:
        raise ConfigError(f"workers must be at least 1, got {n}")
    if n == 1:
        return [source]
    if source.options.series is not None:
        return _series_shards(source, n)
    if not isinstance(source, FileSource):
        raise ConfigError(
            f"{source.name}: only files can be split among workers (not a pipe or a query); "
            "write the data to files first"
        )
    paths = source.paths
    if len(paths) >= n:
        return _by_file(source, n)
    if len(paths) > 1:
        raise ConfigError(
            f"{source.name}: {len(paths)} files cannot feed {n} workers; give at least {n} "
            "files, one file, or fewer workers"
        )
    path = paths[0]
    fmt = source.options.format() or _format(path)
    if fmt == "parquet":
        return _parquet_ranges(path, n, source.options)
    if fmt in _TEXT_FORMATS and infer_compression(path) is None:
        if fmt == "csv" and source.options.label_column is not None:
            raise ConfigError(f"{path}: a CSV file with a header cannot be split by bytes")
        return _byte_ranges(path, fmt, n, source.options)
    raise ConfigError(
        f"{path}: a single {fmt} file{' (compressed)' if infer_compression(path) else ''} "
        f"cannot be split among {n} workers; give a folder of at least {n} files, a Parquet "
        "file, or an uncompressed CSV, JSON Lines, libsvm or text file"
    )


def describe(shards: list[Source]) -> list[str]:
    """What each shard reads: a resumed run must split its input the same way."""
    out = []
    for s in shards:
        what = "files " + ",".join(s.paths) if isinstance(s, FileSource) else s.name
        shard = s.options.series_shard
        out.append(what if shard is None else f"{what} [items {shard[0] + 1}/{shard[1]}]")
    return out


def _series_shards(source: Source, n: int) -> list[Source]:
    """Shards of a forecaster's series that cut none apart: whole series records (files, or
    the lines of one JSON Lines file), or for long-format rows (whose items interleave
    across files) every row to every worker, each keeping its share of the items."""
    if isinstance(source, PipeSource):
        raise ConfigError(f"{source.name}: a pipe cannot be split among workers")
    if isinstance(source, FileSource) and not _long_rows(source):
        paths = source.paths
        if len(paths) >= n:
            return _by_file(source, n)
        fmt = source.options.format() or _format(paths[0])
        if len(paths) == 1 and fmt == "jsonl" and infer_compression(paths[0]) is None:
            return _byte_ranges(paths[0], fmt, n, source.options)
        raise ConfigError(
            f"{source.name}: series records are split among {n} workers by file or by the "
            f"lines of one uncompressed JSON Lines file; give at least {n} files"
        )
    return [
        source.with_options(dataclasses.replace(source.options, series_shard=(k, n)))
        for k in range(n)
    ]


def _long_rows(source: FileSource) -> bool:
    """Whether a file source holds long-format series rows (CSV, or Parquet with an
    ``item_id`` column) rather than series records."""
    path = source.paths[0]
    fmt = source.options.format() or _format(path)
    if fmt == "parquet":
        with fsspec.open(path, "rb") as f:
            return is_long(pq.ParquetFile(f).schema_arrow.names)
    return fmt == "csv"


def _format(path: str) -> str:
    with fsspec.open(path, "rb") as f:
        return detect_format(path, f.read(4096))


def _by_file(source: FileSource, n: int) -> list[Source]:
    """Largest files first, each to the least-loaded shard; files keep their order."""
    fs, _ = fsspec.core.url_to_fs(source.paths[0])
    sizes = {p: int(fs.size(p) or 0) for p in source.paths}
    loads = [0] * n
    groups: list[list[str]] = [[] for _ in range(n)]
    for path in sorted(source.paths, key=lambda p: -sizes[p]):
        i = loads.index(min(loads))
        groups[i].append(path)
        loads[i] += sizes[path]
    order = {p: k for k, p in enumerate(source.paths)}
    return [
        FileSource(
            f"{source.name} [shard {i + 1}/{n}]", sorted(g, key=order.__getitem__), source.options
        )
        for i, g in enumerate(groups)
    ]


class RowRangeSource(Source):
    """Rows ``[start, stop)`` of one Parquet file; positions count from ``start``."""

    def __init__(self, path: str, start: int, stop: int, options: SourceOptions) -> None:
        super().__init__(f"{path} [rows {start}:{stop}]", options)
        self.path, self.start, self.stop = path, start, stop

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        with fsspec.open(self.path, "rb") as f:
            checker.file = self.path
            # A negative offset makes positions shard-local while error messages still
            # name the row of the file (position - offset).
            ctx = self._context(checker, -self.start, self.start + skip)
            ctx.stop = self.stop
            yield from read_parquet(f, ctx)


def _parquet_ranges(path: str, n: int, options: SourceOptions) -> list[Source]:
    with fsspec.open(path, "rb") as f:
        meta = pq.ParquetFile(f).metadata
    total = int(meta.num_rows)
    if total < n:
        raise ConfigError(f"{path}: {total} rows cannot feed {n} workers")
    bounds = [0]
    for g in range(meta.num_row_groups):
        bounds.append(bounds[-1] + int(meta.row_group(g).num_rows))
    cuts = [round(i * total / n) for i in range(n + 1)]
    if meta.num_row_groups >= n:  # move each cut to the nearest row-group boundary
        aligned = [_nearest(bounds, c) for c in cuts]
        if len(set(aligned)) == n + 1:
            cuts = aligned
    return [RowRangeSource(path, a, b, options) for a, b in itertools.pairwise(cuts)]


def _nearest(values: list[int], target: int) -> int:
    return min(values, key=lambda v: abs(v - target))


class ByteRangeSource(Source):
    """The lines of one text file that start in bytes ``[start, stop)``; positions count
    lines from the first of them."""

    reads_series = True  # a line is a whole series record

    def __init__(self, path: str, fmt: str, start: int, stop: int, options: SourceOptions):
        super().__init__(f"{path} [bytes {start}:{stop}]", options)
        self.path, self.fmt, self.start, self.stop = path, fmt, start, stop

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        with fsspec.open(self.path, "rb") as raw:
            begin, end = _line_start(raw, self.start), _line_start(raw, self.stop)
            stream = io.BufferedReader(_Window(raw, begin, end))
            checker.file = self.name
            read = reader_for(self.options, self.fmt, self.name)
            yield from read(stream, self._context(checker, 0, skip))


def _byte_ranges(path: str, fmt: str, n: int, options: SourceOptions) -> list[Source]:
    fs, _ = fsspec.core.url_to_fs(path)
    size = int(fs.size(path) or 0)
    cuts = [i * size // n for i in range(n + 1)]
    return [ByteRangeSource(path, fmt, a, b, options) for a, b in itertools.pairwise(cuts)]


def _line_start(f: BinaryIO, pos: int) -> int:
    """The first byte at or after ``pos`` that starts a line."""
    if pos == 0:
        return 0
    f.seek(pos - 1)
    at = pos - 1
    while block := f.read(1 << 16):
        found = block.find(b"\n")
        if found >= 0:
            return at + found + 1
        at += len(block)
    return at


class _Window(io.RawIOBase):
    """Bytes ``[begin, end)`` of a seekable file, as a file of their own."""

    def __init__(self, raw: BinaryIO, begin: int, end: int) -> None:
        self.raw, self.at, self.end = raw, begin, end
        raw.seek(begin)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.end - self.at)
        if want <= 0:
            return 0
        data = self.raw.read(want)
        buffer[: len(data)] = data
        self.at += len(data)
        return len(data)
