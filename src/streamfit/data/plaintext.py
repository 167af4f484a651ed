"""``text/plain``: raw text, one document per line (UTF-8), unlabelled.

A document's words are counted into a sparse row (:mod:`streamfit.data.documents`). A blank
line is no document, but it is a line: positions count lines, so an error names the line and a
resume skips lines, as for every text format. A line that is not UTF-8 is a bad row.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import BinaryIO

import numpy as np

from streamfit.data.chunk import Chunk
from streamfit.data.documents import Bagger, text_chunk
from streamfit.data.text import ReadContext, parse_blocks
from streamfit.errors import ConfigError

__all__ = ["bagger_for", "read_text"]


def bagger_for(ctx: ReadContext) -> Bagger:
    """The bagger of a read: its vocabulary, else hashing into the channel's width."""
    checker = ctx.checker
    width = checker.hash_space or checker.max_index or checker.n_features
    return Bagger(ctx.vocabulary, width, ctx.stop_words)


def read_text(stream: BinaryIO, ctx: ReadContext) -> Generator[Chunk, None, int]:
    """Yield sparse chunks of a text stream, a document a line; returns the lines read."""
    checker = ctx.checker
    checker.enter(checker.file, ctx.offset, "line")
    if checker.labelled:
        raise ConfigError(
            f"{checker.file}: text/plain documents carry no label; for labelled text use "
            'JSON Lines, {"label": 1, "text": "..."}'
        )
    bagger = bagger_for(ctx)

    def parse(block: bytes, start: int, end: int) -> Chunk:
        bad: list[int] = []
        try:
            lines: list[str | None] = list(block.decode("utf-8").split("\n")[:-1])
        except UnicodeDecodeError:
            lines = []
            for i, raw in enumerate(block.split(b"\n")[:-1]):
                try:
                    lines.append(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    checker.bad(start + i, None, f"not UTF-8 (byte {exc.start + 1})")
                    bad.append(start + i)
                    lines.append(None)
        at = [i for i, line in enumerate(lines) if line is not None and line.strip()]
        texts = [str(lines[i]) for i in at]
        positions = start + np.asarray(at, dtype=np.int64)
        return text_chunk(checker, bagger, texts, positions, end, None, bad)

    return (yield from parse_blocks(stream, ctx, parse, ctx.skip))
