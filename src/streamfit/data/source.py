"""Sources: a URI in, a stream of chunks out.

==========================================  ==============================================
URI                                         source
==========================================  ==============================================
``data/train.csv``, ``s3://b/k.parquet``    one file, local or any fsspec URL
``data/train/``, ``data/part-*.csv.gz``     every file of a folder (recursively) or a glob
``-``, a FIFO                               a pipe: read once, as it arrives
``sqlite:///d.db#SELECT * FROM t``          rows of a query over a SQLAlchemy URL
==========================================  ==============================================

The format comes from ``content_type``, else the file extension, else the first bytes.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import os
import select
import stat
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import fsspec

from streamfit.data.checks import OnBadRows, RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.csv import read_csv
from streamfit.data.jsonl import read_jsonl
from streamfit.data.libsvm import read_libsvm
from streamfit.data.parquet import read_parquet
from streamfit.data.recordio import read_recordio
from streamfit.data.schema import Schema
from streamfit.data.text import BLOCK_BYTES, ReadContext
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
]

Reader = Callable[[BinaryIO, ReadContext], Generator[Chunk, None, int]]


READERS: dict[str, Reader] = {
    "csv": read_csv,
    "parquet": read_parquet,
    "jsonl": read_jsonl,
    "libsvm": read_libsvm,
    "recordio": read_recordio,
}

#: SageMaker's content types (and short names) to formats.
CONTENT_TYPES: dict[str, str] = {
    "text/csv": "csv",
    "application/x-parquet": "parquet",
    "application/jsonlines": "jsonl",
    "application/json": "jsonl",
    "text/libsvm": "libsvm",
    "text/x-libsvm": "libsvm",
    "application/x-recordio-protobuf": "recordio",
    **{name: name for name in READERS},
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
}
_COMPRESSION = {".gz", ".bz2", ".xz", ".zst", ".lz4", ".snappy"}
_RECORDIO_MAGIC = (0xCED7230A).to_bytes(4, "little")
_SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle", "duckdb")


@dataclass(frozen=True)
class SourceOptions:
    """How to read a channel."""

    content_type: str | None = None
    label_column: str | None = None
    labelled: bool = True
    on_bad_rows: OnBadRows = "error"
    #: Sparse indices must be below this (the algorithm's ``feature_dim``).
    max_index: int | None = None
    #: The hashing trick: sparse ids, and string columns of tabular files, folded into
    #: ``[0, hash_features)`` (see :mod:`streamfit.data.hashing`).
    hash_features: int | None = None
    block_bytes: int = BLOCK_BYTES
    #: The named feature columns to expect (see :mod:`streamfit.data.schema`): files and
    #: reads whose columns have names are matched to them by name. None: the first file's.
    columns: Schema | None = None

    def format(self) -> str | None:
        if self.content_type is None:
            return None
        key = self.content_type.split(";")[0].strip().lower()
        if key not in CONTENT_TYPES:
            known = ", ".join(sorted(CONTENT_TYPES))
            raise ConfigError(f"unknown content type {self.content_type!r} (known: {known})")
        return CONTENT_TYPES[key]


def detect_format(name: str, head: bytes = b"") -> str:
    """The format of a file from its name, else from its first bytes.

    >>> detect_format("part-0001.csv.gz"), detect_format("x", b"1 3:0.5 7:1\\n")
    ('csv', 'libsvm')
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
    first = text.split(b"\n", 1)[0].split()
    if len(first) > 1 and all(b":" in t for t in first[1:]):
        return "libsvm"
    return "csv"


class Source(ABC):
    """A channel's data. ``read`` may be called once per epoch (``rereadable``) or once."""

    name: str
    rereadable: bool = True
    _stop: threading.Event | None = None
    _checker: RowChecker | None = None

    def __init__(self, name: str, options: SourceOptions) -> None:
        self.name = name
        self.options = options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def with_options(self, options: SourceOptions) -> Source:
        """The same data, read with other options (the trainer sets labels and bad rows)."""
        other = copy.copy(self)
        other.options = options
        other._checker = None
        return other

    def read(
        self,
        skip: int = 0,
        n_features: int | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        """Chunks from position ``skip`` on; ``n_features`` fixes the width (else row one).

        ``stop``, once set, ends a wait for data that could last (a pipe's): the read then
        raises :class:`ReadStopped`. Reads of files end by themselves, a chunk at a time.
        """
        self._stop = stop
        checker = RowChecker(
            labelled=self.options.labelled,
            on_bad_rows=self.options.on_bad_rows,
            n_features=n_features,
            max_index=self.options.max_index,
            hash_space=self.options.hash_features,
            file=self.name,
            columns=self.schema,  # a later read matches the first one's columns by name
        )
        self._checker = checker
        return self._read(skip, checker)

    @property
    def schema(self) -> Schema | None:
        """The named feature columns: expected (``options.columns``), else those the first
        read found (known once it has begun); None for data without names."""
        if self.options.columns is not None or self._checker is None:
            return self.options.columns
        return self._checker.columns

    def expecting(self, schema: Schema | Mapping[str, Any] | None) -> Source:
        """This source, its named columns matched to ``schema`` (a state's or a model's, as
        ``Schema.to_json`` wrote it); itself when ``schema`` is None."""
        if schema is None:
            return self
        if not isinstance(schema, Schema):
            schema = Schema.from_json(schema)
        return self.with_options(dataclasses.replace(self.options, columns=schema))

    @abstractmethod
    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        """Chunks from position ``skip`` on, validated by ``checker``."""

    def _context(self, checker: RowChecker, offset: int, skip: int) -> ReadContext:
        return ReadContext(
            checker=checker,
            offset=offset,
            skip=skip,
            label_column=self.options.label_column,
            block_bytes=self.options.block_bytes,
        )


class FileSource(Source):
    """Files read in sorted order; positions run on across files."""

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
                count = yield from READERS[fmt](stream, ctx)
            offset += count


class PipeSource(Source):
    """A pipe (``-`` for standard input, or a FIFO): read once, as the data arrives.

    Nothing can be skipped on resume: what the pipe delivered before the checkpoint is in the
    state already, and what it delivers now is new data. Positions continue from ``skip``.
    """

    rereadable = False

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
            yield from READERS[fmt](stream, self._context(checker, skip, 0))
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
    if _is_sql(uri):
        from streamfit.data.sql import SQLSource  # SQLAlchemy is imported only when used

        url, _, query = uri.partition("#")
        return SQLSource(url, query, options)
    if "://" not in uri and os.path.exists(uri) and stat.S_ISFIFO(os.stat(uri).st_mode):
        return PipeSource(uri, open(uri, "rb"), options, close=True)
    return FileSource(uri, _expand(uri), options)
