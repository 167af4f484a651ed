"""Reading line-oriented files in blocks of whole lines, counting lines as it goes.

A position in a text source is a line index, so an error can name the line, and a resume can
skip ``n`` lines by counting newline bytes without parsing them.
"""

from __future__ import annotations

import os
import select
import stat
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.vocabulary import Vocabulary

if TYPE_CHECKING:
    from streamfit.core.windows import SeriesReading

__all__ = ["BLOCK_BYTES", "ReadContext", "line_blocks", "parse_blocks", "record_lines"]

BLOCK_BYTES = 8 << 20


@dataclass
class ReadContext:
    """What a format reader needs about the read it is part of."""

    checker: RowChecker
    offset: int  # global position of this file's first record
    skip: int = 0  # records of this file to skip (resume)
    stop: int | None = None  # record of this file to stop before (a shard of a Parquet file)
    label_column: str | None = None
    block_bytes: int = BLOCK_BYTES
    #: Raw text: the ids of words (else they are hashed), and whether stop words are dropped.
    vocabulary: Vocabulary | None = None
    stop_words: bool = True
    #: Series read into windows (:mod:`streamfit.data.series`): positions are windows.
    series: SeriesReading | None = None
    #: The read's table of series that arrive in pieces (long-format rows, whose positions
    #: are rows), shared by its files; None where the read cannot take them (forecasts). A
    #: :class:`streamfit.data.series_long.SeriesTable`, which imports this module.
    series_table: Any = None


def _is_pipe(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


def _prompt_reader(stream: BinaryIO) -> Callable[[int], bytes]:
    """``read(n)`` that returns what a pipe has now (up to ``n``) instead of waiting for ``n``
    bytes, so rows that trickle in are trained on as they arrive."""
    read1 = getattr(stream, "read1", None)
    if read1 is None or not _is_pipe(stream):
        return stream.read
    fd = stream.fileno()

    def read(n: int) -> bytes:
        parts = [read1(n)]
        size = len(parts[0])
        while parts[-1] and size < n and select.select([fd], [], [], 0)[0]:
            parts.append(read1(n - size))
            size += len(parts[-1])
        return b"".join(parts)

    return read


def line_blocks(
    stream: BinaryIO, skip_lines: int = 0, block_bytes: int = BLOCK_BYTES
) -> Generator[tuple[bytes, int, int], None, int]:
    """Yield ``(block, index of its first line, lines in it)`` of whole lines, after
    ``skip_lines`` lines.

    Returns the number of lines in the stream (a last line without a newline counts).
    """
    read = _prompt_reader(stream)
    line = 0
    carry = b""
    while True:
        data = read(block_bytes)
        if not data:
            break
        if carry:
            data = carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        block, carry = data[: cut + 1], data[cut + 1 :]
        n = block.count(b"\n")
        if line + n <= skip_lines:
            line += n
            continue
        if line < skip_lines:
            pos = -1
            for _ in range(skip_lines - line):
                pos = block.find(b"\n", pos + 1)
            block = block[pos + 1 :]
            n -= skip_lines - line
            line = skip_lines
        yield block, line, n
        line += n
    if carry:
        if line >= skip_lines:
            yield carry + b"\n", line, 1
        line += 1
    return line


def parse_blocks(
    stream: BinaryIO,
    ctx: ReadContext,
    parse: Callable[[bytes, int, int], Chunk | None],
    skip: int,
    first_line: int = 0,
) -> Generator[Chunk, None, int]:
    """Yield ``parse(block, position of its first line, position after its last)`` for each
    block of whole lines (a ``None`` yields nothing); returns the number of lines read,
    counting from ``first_line``."""
    blocks = line_blocks(stream, skip, ctx.block_bytes)
    while True:
        try:
            block, line, n = next(blocks)
        except StopIteration as stop:
            return first_line + int(stop.value)
        start = ctx.offset + first_line + line
        chunk = parse(block, start, start + n)
        if chunk is not None:
            yield chunk


def record_lines(block: bytes) -> tuple[list[bytes], np.ndarray] | None:
    """The non-blank lines of ``block`` and their line offsets, or None if none is blank.

    The fast path of every text format assumes one record per line; this finds the records
    when blank lines break that (``None`` means they map one to one).
    """
    if b"\n\n" not in block and b"\n\r\n" not in block and not block[:1].isspace():
        return None
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    keep = [i for i, line in enumerate(lines) if line.strip()]
    return [lines[i] for i in keep], np.asarray(keep, dtype=np.int64)
