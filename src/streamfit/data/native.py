"""Input for pyarrow's multi-threaded readers that holds no Python object.

pyarrow's CSV, JSON and Parquet readers work on Arrow's own C++ thread pool, and a reader can
return (on a parse error above all) while a task of that pool still holds what it was given.
When that is a Python object (a ``BytesIO``, a Python file, an ``invalid_row_handler``, a buffer
exported by ``bytes``), the pool thread must take the GIL to release it. If the interpreter has
begun to finalize by then (a data error ends the process within a millisecond), CPython ends
that thread with ``pthread_exit``, whose forced unwinding through Arrow's ``noexcept`` frames
calls ``std::terminate``: "terminate called without an active exception", SIGABRT, exit 134
instead of the data error's exit 3 (measured here: up to one run in three on two busy CPUs,
three in four on one). Arrow's threads cannot be joined from Python, so they are given nothing
of Python's to let go of: a copy of the bytes in Arrow's memory (about 1 ms for an 8 MB
block), a file Arrow opens itself, no callbacks.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

import pyarrow as pa
from fsspec.implementations.local import LocalFileOpener

__all__ = ["arrow_bytes", "arrow_file"]


def arrow_bytes(data: bytes) -> pa.BufferReader:
    """A reader over a copy of ``data`` in memory Arrow allocated and owns.

    >>> arrow_bytes(b"1,2\\n").read()
    b'1,2\\n'
    """
    buffer = pa.allocate_buffer(len(data))
    if data:
        memoryview(buffer).cast("B")[:] = data
    return pa.BufferReader(buffer)


def arrow_file(stream: BinaryIO) -> pa.NativeFile | None:
    """The local file under ``stream``, opened by Arrow itself; None when there is none (a
    remote or decompressing stream, which is then read without Arrow's threads)."""
    path = None
    if isinstance(stream, LocalFileOpener) and not stream.compression:
        path = stream.path
    elif isinstance(stream, io.BufferedReader) and isinstance(stream.raw, io.FileIO):
        path = stream.name if isinstance(stream.name, str) else None
    if path is None or not os.path.isfile(path) or stream.tell() != 0:
        return None
    return pa.OSFile(path, "rb")
