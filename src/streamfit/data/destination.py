"""Where ``convert`` and ``predict`` write: never over an input, and never half a file.

Opening a file for writing empties it, so an output that is also an input (by the same
name, or through a symbolic link, a hard link or another path to it) would be read as an
empty file and written as one: it is refused before anything is opened. A local output is
written under a temporary name beside it and renamed over it only when complete, so a run
that fails leaves what was there before and no temporary file. A remote output (``s3://``...)
is written by fsspec directly: object stores publish a file only once it is closed.

>>> refuse_inputs("train.csv", [], ["train.csv"])
Traceback (most recent call last):
...
streamfit.errors.ConfigError: output train.csv is the input train.csv: writing it would destroy it
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import fsspec
from fsspec.utils import infer_compression

from streamfit.data.source import FileSource, PipeSource, Source
from streamfit.errors import ConfigError

__all__ = ["input_files", "open_output", "refuse_inputs"]


def _local(uri: str) -> str | None:
    """The local path of ``uri``, or None for another filesystem's."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return None if "://" in uri else uri


def input_files(source: Source) -> list[str | int]:
    """What ``source`` reads that a local output could overwrite: file paths, or the file
    descriptor of a pipe (standard input redirected from a file is that file)."""
    if isinstance(source, FileSource):
        return [p for p in map(_local, source.paths) if p is not None]
    if isinstance(source, PipeSource):
        try:
            return [source.stream.fileno()]
        except (AttributeError, OSError, ValueError):
            return []
    database = getattr(source, "database_file", None)  # a SQLite source's file
    return [database] if isinstance(database, str) else []


def refuse_inputs(
    output: str, sources: Iterable[Source], paths: Iterable[str | os.PathLike[str]] = ()
) -> None:
    """A :class:`ConfigError` if ``output`` is one of the files ``sources`` read, or one of
    ``paths`` (a model's files, say), however it is reached; also if it is a folder."""
    local = _local(output)
    if output == "-" or local is None:
        remote = [s.name for s in sources if isinstance(s, FileSource) and output in s.paths]
        if remote:
            raise ConfigError(f"output {output} is an input: writing it would destroy it")
        return
    if os.path.isdir(local):
        raise ConfigError(f"output {output} is a folder: name a file to write")
    out_stat = _stat(local)
    out_real = os.path.realpath(local)
    inputs: list[str | int] = [os.fspath(p) for p in paths]
    for source in sources:
        inputs += input_files(source)
    for item in inputs:
        in_stat = _stat(item)
        same = out_stat is not None and in_stat is not None and os.path.samestat(out_stat, in_stat)
        if same or (isinstance(item, str) and os.path.realpath(item) == out_real):
            what = "standard input" if isinstance(item, int) else item
            raise ConfigError(f"output {output} is the input {what}: writing it would destroy it")


def _stat(item: str | int) -> os.stat_result | None:
    try:
        return os.fstat(item) if isinstance(item, int) else os.stat(item)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def open_output(output: str, *, compression: str | None = "infer") -> Iterator[BinaryIO]:
    """A binary stream to ``output`` (``-``: standard output), compressed as its name says
    (``compression="infer"``). A local file appears whole when the block ends without an
    error, and not at all (or as it was) when it raises; see the module docstring."""
    if output == "-":
        yield sys.stdout.buffer
        return
    kind = infer_compression(output) if compression == "infer" else compression
    local = _local(output)
    if local is None:
        with fsspec.open(output, "wb", compression=kind) as remote:
            yield remote
        return
    # Through a symbolic link, the file it points to is the one replaced.
    final = Path(os.path.realpath(local))
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.parent / f".{final.name}.{secrets.token_hex(4)}.tmp"
        # O_EXCL: a name nothing else holds; mode 0o666 less the umask, as open() gives.
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise ConfigError(f"cannot write {output} ({exc.strerror or exc})") from exc
    try:
        with fsspec.open(str(temp), "wb", compression=kind) as stream:
            yield stream
        if final.exists():
            os.chmod(temp, final.stat().st_mode & 0o7777)  # a replaced file keeps its mode
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
