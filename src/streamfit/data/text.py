"""Reading line-oriented files in blocks of whole lines, counting lines as it goes.

A position in a text source is a line index, so an error can name the line, and a resume can
skip ``n`` lines by counting newline bytes without parsing them.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from streamfit.data.checks import RowChecker

__all__ = ["BLOCK_BYTES", "ReadContext", "line_blocks", "record_lines"]

BLOCK_BYTES = 8 << 20


@dataclass
class ReadContext:
    """What a format reader needs about the read it is part of."""

    checker: RowChecker
    offset: int  # global position of this file's first record
    skip: int = 0  # records of this file to skip (resume)
    label_column: str | None = None
    block_bytes: int = BLOCK_BYTES


def line_blocks(
    stream: BinaryIO, skip_lines: int = 0, block_bytes: int = BLOCK_BYTES
) -> Generator[tuple[bytes, int], None, int]:
    """Yield ``(block, index of its first line)`` of whole lines, after ``skip_lines`` lines.

    Returns the number of lines in the stream (a last line without a newline counts).
    """
    line = 0
    carry = b""
    while True:
        data = stream.read(block_bytes)
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
        yield block, line
        line += n
    if carry:
        if line >= skip_lines:
            yield carry + b"\n", line
        line += 1
    return line


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
