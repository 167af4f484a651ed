"""Sources: a URI in, a stream of chunks out.

==========================================  ==============================================
URI                                         source
==========================================  ==============================================
``data/train.csv``, ``s3://b/k.parquet``    one file, local or any fsspec URL
``data/train/``, ``data/part-*.csv.gz``     every file of a folder (recursively) or a glob
``-``, a FIFO                               a pipe: read once, as it arrives
``sqlite:///d.db#SELECT * FROM t``          rows of a query over a SQLAlchemy URL
``redis://h:6379/0?stream=s&group=g``       a Redis stream (:mod:`.redis_stream`)
``kinesis://name?region=us-east-1``         an Amazon Kinesis stream (:mod:`.kinesis`)
==========================================  ==============================================

The format comes from ``content_type``, else the file extension, else the first bytes.
"""

from __future__ import annotations

import io
import os
import select
import stat
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from typing import BinaryIO

import fsspec

from streamfit.data.base import CONTENT_TYPES, Source, SourceOptions
from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.csv import read_csv
from streamfit.data.jsonl import read_jsonl
from streamfit.data.libsvm import read_libsvm
from streamfit.data.parquet import read_parquet
from streamfit.data.plaintext import read_text
from streamfit.data.recordio import read_recordio
from streamfit.data.series import SERIES_READERS
from streamfit.data.text import ReadContext
from streamfit.errors import ConfigError

__all__ = [
    "CONTENT_TYPES",
    "FileSource",
    "PipeSource",
    "ReadStopped",
    "Source",
    "SourceOptions",
    "detect_format",
    "open_source",
    "reader_for",
]

Reader = Callable[[BinaryIO, ReadContext], Generator[Chunk, None, int]]


READERS: dict[str, Reader] = {
    "csv": read_csv,
    "parquet": read_parquet,
    "jsonl": read_jsonl,
    "libsvm": read_libsvm,
    "recordio": read_recordio,
    "text": read_text,
}

_EXTENSIONS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".libsvm": "libsvm",
    ".svm": "libsvm",
    ".svmlight": "libsvm",
    ".rec": "recordio",
    ".recordio": "recordio",
    ".pbr": "recordio",
    ".protobuf": "recordio",
    ".txt": "text",
    ".text": "text",
}
_COMPRESSION = {".gz", ".bz2", ".xz", ".zst", ".lz4", ".snappy"}
_RECORDIO_MAGIC = (0xCED7230A).to_bytes(4, "little")
_SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle", "duckdb")


def reader_for(options: SourceOptions, fmt: str, name: str) -> Reader:
    """The reader of format ``fmt``: of rows, or of series into windows."""
    if options.series is None:
        return READERS[fmt]
    if fmt not in SERIES_READERS:
        raise ConfigError(
            f"{name}: DeepAR reads series records from JSON Lines or Parquet, and long-format "
            f"rows from CSV, Parquet or SQL, not {fmt}"
        )
    return SERIES_READERS[fmt]


def detect_format(name: str, head: bytes = b"") -> str:
    """The format of a file from its name, else from its first bytes.

    >>> detect_format("part-0001.csv.gz"), detect_format("x", b"1 3:0.5 7:1\\n")
    ('csv', 'libsvm')
    >>> detect_format("-", b"A new GPU driver.\\n"), detect_format("-", b"1,0.5,nan\\n")
    ('text', 'csv')
    """
    base = name.lower()
    root, ext = os.path.splitext(base)
    if ext in _COMPRESSION:
        ext = os.path.splitext(root)[1]
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(_RECORDIO_MAGIC):
        return "recordio"
    text = head.lstrip()
    if text.startswith(b"{"):
        return "jsonl"
    line = text.split(b"\n", 1)[0]
    first = line.split()
    if len(first) > 1 and all(b":" in t for t in first[1:]):
        return "libsvm"
    if b"," not in line and any(_is_word(t) for t in first):
        return "text"  # words, not a CSV row (whose fields are numbers)
    return "csv"


def _is_word(token: bytes) -> bool:
    """A token with a letter that is no number (``nan`` and ``1e5`` are numbers).

    >>> [_is_word(t) for t in (b"kernel", b"1e5", b"nan", b"3.5", b"x86")]
    [True, False, False, False, True]
    """
    if not any(chr(c).isalpha() for c in token if c < 128) and token.isascii():
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False


class FileSource(Source):
    """Files read in sorted order; positions run on across files."""

    reads_series = True

    def __init__(self, name: str, paths: list[str], options: SourceOptions) -> None:
        super().__init__(name, options)
        self.paths = paths

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        offset = 0
        for path in self.paths:
            with fsspec.open(path, "rb", compression="infer") as raw:
                stream = io.BufferedReader(raw) if not hasattr(raw, "peek") else raw
                fmt = self.options.format() or detect_format(path, _peek(stream))
                if fmt == "parquet" and not stream.seekable():
                    raise ConfigError(f"{path}: Parquet needs a seekable file, not a stream")
                checker.file = path
                ctx = self._context(checker, offset, max(0, skip - offset))
                count = yield from reader_for(self.options, fmt, path)(stream, ctx)
            offset += count
        if self._series_table is not None and self._series_table.rows:
            yield from self._series_table.finish(checker)  # a test of long-format rows


class PipeSource(Source):
    """A pipe (``-`` for standard input, or a FIFO): read once, as the data arrives.

    Nothing can be skipped on resume: what the pipe delivered before the checkpoint is in the
    state already, and what it delivers now is new data. Positions continue from ``skip``.
    """

    rereadable = False
    reads_series = True

    def __init__(
        self, name: str, stream: BinaryIO, options: SourceOptions, *, close: bool = False
    ) -> None:
        super().__init__(name, options)
        self.stream = stream
        self._close = close  # the source opened the stream (a FIFO): close it after the read
        self._used = False

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        if self._used:
            raise ConfigError(f"{self.name}: a pipe can be read only once")
        self._used = True
        try:
            stream = _stoppable(self.stream, self._stop)
            if not hasattr(stream, "peek"):
                stream = io.BufferedReader(stream)  # type: ignore[type-var]
            fmt = self.options.format() or detect_format("", _peek(stream))
            if fmt == "parquet":
                raise ConfigError(
                    f"{self.name}: Parquet cannot be read from a pipe (needs seeking)"
                )
            reader = reader_for(self.options, fmt, self.name)
            yield from reader(stream, self._context(checker, skip, 0))
            if self._series_table is not None and self._series_table.rows:
                yield from self._series_table.finish(checker)
        finally:
            if self._close:
                self.stream.close()


class ReadStopped(Exception):
    """A read of a pipe given up because its reader was asked to stop."""


class _StoppableRead(io.RawIOBase):
    """The bytes of a file descriptor, read only once ``select`` says some are there, so that
    a wait for data that may never come checks ``stop`` every 0.1 s."""

    def __init__(self, fd: int, stop: threading.Event) -> None:
        self._fd = fd
        self._stop = stop

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not select.select([self._fd], [], [], 0.1)[0]:
            if self._stop.is_set():
                raise ReadStopped("stopped while waiting for data")
        data = os.read(self._fd, len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _stoppable(stream: BinaryIO, stop: threading.Event | None) -> BinaryIO:
    """``stream``, or its descriptor read so that ``stop`` interrupts a wait for data: a
    pipe's, a socket's or a terminal's (a regular file's reads never wait). The stream must
    not have been read from: what its buffer held would be skipped."""
    if stop is None:
        return stream
    try:
        fd = stream.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return stream  # in memory: never waits
    if regular:
        return stream
    return io.BufferedReader(_StoppableRead(fd, stop))


def _peek(stream: BinaryIO, size: int = 4096) -> bytes:
    peek = getattr(stream, "peek", None)
    return bytes(peek(size)[:size]) if peek is not None else b""


def _is_sql(uri: str) -> bool:
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
    return "://" in uri and scheme in _SQL_SCHEMES and "#" in uri


def _expand(uri: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(uri)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]

    def unstrip(p: str) -> str:
        return p if protocol in ("file", "local") else f"{protocol}://{p}"

    if any(ch in path for ch in "*?["):
        found = sorted(fs.glob(path))
    elif fs.isdir(path):
        found = sorted(fs.find(path))
    elif fs.exists(path):
        found = [path]
    else:
        raise ConfigError(f"{uri}: no such file or folder")
    files = [p for p in found if not os.path.basename(p).startswith((".", "_")) and not fs.isdir(p)]
    if not files:
        raise ConfigError(f"{uri}: no data files found")
    return [unstrip(p) for p in files]


def open_source(uri: str | Source, options: SourceOptions | None = None) -> Source:
    """The source a URI names (see the module docstring); a ``Source`` is returned as is."""
    options = options or SourceOptions()
    if isinstance(uri, Source):
        return uri if uri.options == options else uri.with_options(options)
    if uri == "-":
        return PipeSource("<stdin>", sys.stdin.buffer, options)
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("redis", "rediss"):
        from streamfit.data.redis_stream import RedisStreamSource  # redis-py only when used

        return RedisStreamSource(uri, options)
    if scheme == "kinesis":
        from streamfit.data.kinesis import KinesisSource  # boto3 only when used

        return KinesisSource(uri, options)
    if _is_sql(uri):
        from streamfit.data.sql import SQLSource  # SQLAlchemy is imported only when used

        url, _, query = uri.partition("#")
        return SQLSource(url, query, options)
    if "://" not in uri and os.path.exists(uri) and stat.S_ISFIFO(os.stat(uri).st_mode):
        return PipeSource(uri, open(uri, "rb"), options, close=True)
    return FileSource(uri, _expand(uri), options)
