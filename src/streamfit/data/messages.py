"""What message streams share: bodies decoded by the file readers, and a position that is both
a row count and, per lane (a Redis stream, a Kinesis shard), the id of the last message folded.

A message body holds rows as a file would: JSON objects a line (``format=json``), CSV lines
(``format=csv``, SageMaker's layout: no header, label first) or RecordIO-protobuf records
(``format=recordio``). The bodies of one fetch are joined and read by the same reader as a file,
so a stream yields the same chunks as a file of the same rows.

Positions count rows (lines, records) across runs, as a pipe's do. The source remembers which
message each position came from, so that the trainer can record in the state (``stamp``) the
last message of each lane whose rows are all folded, and how many rows of the next one are
(``partial``: a batch may end inside a message of several rows). A resumed read skips every
message up to that id and those rows of the next one: nothing is folded twice, nothing lost.

>>> bodies = [b'{"label": 1, "features": [0.5]}', b'{"label": 0, "features": [2.0]}\\n']
>>> join_bodies("jsonl", bodies)
(b'{"label": 1, "features": [0.5]}\\n{"label": 0, "features": [2.0]}\\n', [1, 1])
>>> join_bodies("csv", [b"1,0.5\\n0,2", b""])
(b'1,0.5\\n0,2\\n\\n', [2, 1])
"""

from __future__ import annotations

import collections
import io
import queue
import re
import struct
import threading
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamfit.data.base import CONTENT_TYPES, Source, SourceOptions
from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.csv import read_csv
from streamfit.data.jsonl import read_jsonl
from streamfit.data.recordio import MAGIC, read_recordio
from streamfit.errors import ConfigError, DataError

if TYPE_CHECKING:
    from streamfit.core.state import State

__all__ = ["STREAM_KEY", "Joined", "Message", "MessageSource", "join_bodies", "parse_seconds"]

#: The key of ``State.inputs`` where a stream's cursor is recorded.
STREAM_KEY = "stream"

_FORMATS = {"json": "jsonl", "jsonl": "jsonl", "csv": "csv", "recordio": "recordio"}
_READERS = {"jsonl": read_jsonl, "csv": read_csv, "recordio": read_recordio}
_HEADER = struct.Struct("<II")
_END = object()
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(ms|s|m|h)?\s*$")


def parse_seconds(text: str, name: str) -> float:
    """A duration such as ``5s``, ``250ms``, ``2m`` or ``1.5`` (seconds).

    >>> parse_seconds("250ms", "idle_timeout"), parse_seconds("2m", "x"), parse_seconds("3", "x")
    (0.25, 120.0, 3.0)
    """
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(f"{name}={text!r}: not a duration (e.g. 5s, 250ms, 2m)")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2) or "s"]
    return float(match.group(1)) * scale


@dataclass(frozen=True)
class Message:
    """One message: its lane (a stream or shard), its id in the lane, its body."""

    lane: str
    id: str
    body: bytes


@dataclass(frozen=True)
class Joined:
    """Messages of one lane of one line each, already joined (``block``: each line ends with a
    newline), so that a backlog of small messages costs no Python work per message."""

    lane: str
    ids: list[str]
    block: bytes

    def messages(self) -> list[Message]:
        lines = self.block.split(b"\n")[: len(self.ids)]
        return [Message(self.lane, mid, line) for mid, line in zip(self.ids, lines, strict=True)]


def stream_format(options: SourceOptions, given: str | None, name: str) -> str:
    """The reader's format: the URL's ``format=``, else the content type, else JSON."""
    fmt = given if given is not None else options.format()
    if fmt is None:
        return "jsonl"
    fmt = _FORMATS.get(fmt.lower(), CONTENT_TYPES.get(fmt.lower(), fmt))
    if fmt not in _READERS:
        raise ConfigError(f"{name}: format={given or fmt!r}: messages are json, csv or recordio")
    if fmt == "csv" and options.label_column is not None:
        raise ConfigError(f"{name}: CSV messages have no header: the label is the first field")
    return fmt


def _records(body: bytes) -> int:
    """The RecordIO records of ``body`` (the reader reports a malformed one)."""
    n = p = 0
    while p + 8 <= len(body):
        magic, size = _HEADER.unpack_from(body, p)
        if magic != MAGIC:
            break
        size &= (1 << 29) - 1
        p += 8 + size + (-size & 3)
        n += 1
    return max(n, 1)


def join_bodies(fmt: str, bodies: list[bytes]) -> tuple[bytes, list[int]]:
    """The bodies as one block for the reader of ``fmt``, and the rows (lines, records) of
    each: a text body ends with one newline, added if it has none."""
    if fmt == "recordio":
        return b"".join(bodies), [_records(b) for b in bodies]
    parts, counts = [], []
    for body in bodies:
        text = body[:-1] if body.endswith(b"\n") else body
        parts.append(text)
        counts.append(text.count(b"\n") + 1)
    return b"\n".join(parts) + b"\n", counts


class MessageSource(Source):
    """A message stream (see the module docstring). Subclasses fetch; this class decodes,
    counts positions and keeps the cursor."""

    rereadable = False
    endless = True

    def __init__(self, name: str, options: SourceOptions, fmt: str | None) -> None:
        super().__init__(name, options)
        self.fmt = stream_format(options, fmt, name)
        self._given_format = fmt
        #: Resumed from: the last id folded per lane, and rows folded of the next message.
        self.start: dict[str, str] = {}
        self.start_partial: tuple[str, str, int] | None = None
        # Messages read and not yet wholly folded: (first position, end position, lane, ids),
        # one message of any rows, or messages of a row each (a joined fetch: one entry).
        self._open: collections.deque[tuple[int, int, str, list[str]]] = collections.deque()
        self._done: dict[str, str] = {}
        self._lock = threading.Lock()
        self._halt: threading.Event | None = None

    def with_options(self, options: SourceOptions) -> Source:
        other = super().with_options(options)
        assert isinstance(other, MessageSource)
        other.fmt = stream_format(options, self._given_format, self.name)
        return other

    # -- what the trainer calls ----------------------------------------------------------------

    def restored(self, state: State | None) -> Source:
        """Continue after the messages ``state`` holds (its stamp); ``self`` if none."""
        saved = None if state is None else state.inputs.get(STREAM_KEY)
        if not saved:
            return self
        self.start = {str(k): str(v) for k, v in dict(saved.get("cursor") or {}).items()}
        self._done = dict(self.start)
        partial = saved.get("partial")
        self.start_partial = (
            None if not partial else (str(partial[0]), str(partial[1]), int(partial[2]))
        )
        return self

    def stamp(self, state: State) -> None:
        """Record in ``state`` where the stream stands at its position (after a fold)."""
        rows = state.position.rows
        with self._lock:
            partial = None
            while self._open and (self._open[0][0] < rows or self._open[0][1] <= rows):
                first, end, lane, ids = self._open[0]
                if end <= rows:
                    self._open.popleft()
                    self._done[lane] = ids[-1]
                elif len(ids) > 1:  # a row a message: those before ``rows`` are whole
                    self._done[lane] = ids[rows - first - 1]
                    self._open[0] = (rows, end, lane, ids[rows - first :])
                else:
                    partial = [lane, ids[0], rows - first]
                    break
            state.inputs[STREAM_KEY] = {"cursor": dict(self._done), "partial": partial}

    def commit(self, state: State) -> None:
        """``state`` is durable (a checkpoint or the output holds it): streams that
        acknowledge messages acknowledge those it holds."""
        saved = state.inputs.get(STREAM_KEY)
        if saved:
            self._acknowledge({str(k): str(v) for k, v in dict(saved["cursor"]).items()})

    # -- for subclasses --------------------------------------------------------------------------

    @abstractmethod
    def _fetch(self) -> Iterator[list[Message] | Joined]:
        """Messages as they arrive, after ``self.start``, until the stream has been quiet for
        its idle timeout or the read is stopped."""

    def _acknowledge(self, cursor: dict[str, str]) -> None:
        """Acknowledge every message up to ``cursor`` (nothing by default)."""

    @staticmethod
    def _after(mid: str, last: str) -> bool:
        """Whether id ``mid`` comes after ``last`` in its lane (numeric ids)."""
        return int(mid) > int(last)

    def _stopped(self) -> bool:
        return any(e is not None and e.is_set() for e in (self._halt, self._stop, self.interrupt))

    def _prefetched(self) -> Iterator[list[Message] | Joined]:
        """``_fetch`` run one fetch ahead in a thread of its own: the next fetch waits on the
        network (without the GIL) while this one is parsed, where the two took turns."""
        ahead: queue.Queue[object] = queue.Queue(maxsize=1)
        self._halt = halt = threading.Event()

        def put(item: object) -> bool:
            while not halt.is_set():
                try:
                    ahead.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def run() -> None:
            try:
                for item in self._fetch():
                    if not put(item):
                        return
                put(_END)
            except BaseException as exc:  # raised by the reader, in the read's thread
                put(exc)

        thread = threading.Thread(target=run, name="streamfit-fetch", daemon=True)
        thread.start()
        try:
            while True:
                item = ahead.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            halt.set()
            thread.join(5.0)  # a fetch waits at most a fraction of a second

    # -- reading ---------------------------------------------------------------------------------

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        position = skip
        reader = _READERS[self.fmt]
        for fetched in self._prefetched():
            joined = fetched if isinstance(fetched, Joined) and self._all_fresh(fetched) else None
            fresh: list[Message] = []
            if joined is not None:  # a row a message, as they came
                lane, ids, block, counts = joined.lane, joined.ids, joined.block, None
            else:
                messages = fetched.messages() if isinstance(fetched, Joined) else fetched
                fresh = [
                    m
                    for m in messages
                    if m.lane not in self.start or self._after(m.id, self.start[m.lane])
                ]
                if not fresh:
                    continue
                block, counts = join_bodies(self.fmt, [m.body for m in fresh])
                lane, ids = fresh[0].lane, [m.id for m in fresh]
            drop = 0
            partial = self.start_partial
            if partial is not None and (lane, ids[0]) == partial[:2]:
                drop, self.start_partial = partial[2], None  # rows folded before the restart
            first = position - drop
            with self._lock:
                if counts is None:
                    self._open.append((first, first + len(ids), lane, ids))
                else:
                    at = first
                    for m, n in zip(fresh, counts, strict=True):
                        self._open.append((at, at + n, m.lane, [m.id]))
                        at += n
            checker.file = self.name
            ctx = self._context(checker, first, drop)
            try:
                yield from reader(io.BytesIO(block), ctx)
            except DataError as exc:
                if joined is not None:
                    fresh, counts = joined.messages(), [1] * len(ids)
                assert counts is not None
                raise self._named(exc, fresh, counts, first) from exc
            position = first + (len(ids) if counts is None else sum(counts))

    def _all_fresh(self, joined: Joined) -> bool:
        """Whether every message of ``joined`` comes after those the state holds."""
        last = self.start.get(joined.lane)
        return last is None or self._after(joined.ids[0], last)

    def _named(
        self, exc: DataError, messages: list[Message], counts: list[int], first: int
    ) -> DataError:
        """``exc`` naming the message of the bad row and the row within it."""
        if exc.row is None:
            return exc
        index = exc.row - 1  # 0-based row of the block
        for m, n in zip(messages, counts, strict=True):
            if index < n:
                where = f"{self.name}, message {m.id}" + (f" of {m.lane}" if m.lane else "")
                return DataError(
                    exc.message,
                    source=where,
                    row=index + 1,
                    field=exc.field,
                    row_label=exc.row_label,
                )
            index -= n
        return exc
