"""Fixed-size tensor batches from a source, read ahead in a background thread.

The thread parses and slices chunks while the caller computes, so I/O overlaps training.
Memory is bounded by ``prefetch`` batches plus the chunk being parsed, whatever the data size.
On CUDA the batches are staged in pinned memory and copied without blocking the reader.

The thread never outlives the iteration that started it. A thread still inside a C or C++ call
when the interpreter finalizes is ended by ``pthread_exit`` as soon as it asks for the GIL back,
and that forced unwinding through C++ ``noexcept`` frames (pyarrow's) aborts the process:
SIGABRT, exit 134, where a data error should exit 3. So every way out of an iteration stops the
thread and joins it before going on: the stream's end, an error in the reader (handed to the
consumer and raised there), an error or ``KeyboardInterrupt`` in the consumer, a ``break`` or
``close()``; and an iteration abandoned without being closed is stopped by an ``atexit`` hook,
which runs before finalization begins. The thread checks for the stop between chunks and while
waiting for room, so it ends within one chunk's parse. A pipe's read is made to wait in
``select`` and checks the stop too (:class:`streamfit.data.source.PipeSource`); a read that
cannot be interrupted at all (a SQL fetch, a remote file) is waited for up to
``JOIN_SECONDS``, then left to the process's end: it waits in C code without C++ frames (a
socket read), so if it wakes during finalization its ``pthread_exit`` has nothing to abort.
SIGTERM needs no care here: training turns it into a checkpoint and an error raised in the
consumer; elsewhere its default action ends the process without finalizing anything.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch

from streamfit.core.batch import CSR, Batch, Words
from streamfit.data.chunk import (
    Chunk,
    WordArrays,
    dense_arrays,
    is_sparse,
    labels_array,
    sparse_arrays,
    word_arrays,
)
from streamfit.data.source import Source
from streamfit.errors import ConfigError

__all__ = ["JOIN_SECONDS", "Batcher"]

log = logging.getLogger(__name__)

_END = object()
#: How long stopping waits for a reader blocked in a read nothing can interrupt.
JOIN_SECONDS = 30.0


@dataclass
class _Piece:
    """Rows of one chunk not yet batched (a row range of the chunk's arrays)."""

    x: np.ndarray | None  # dense features
    csr: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # sparse: indptr, indices, values
    labels: np.ndarray | None
    positions: np.ndarray
    words: WordArrays | None = None  # hashed text: the words behind the sparse rows
    unknown: np.ndarray | None = None  # text read by a vocabulary: unknown words per row

    @property
    def n(self) -> int:
        return len(self.positions)

    def split(self, k: int) -> tuple[_Piece, _Piece]:
        head_l, tail_l = _cut(self.labels, k)
        head_u, tail_u = _cut(self.unknown, k)
        if self.x is not None:
            return (
                _Piece(self.x[:k], None, head_l, self.positions[:k]),
                _Piece(self.x[k:], None, tail_l, self.positions[k:]),
            )
        assert self.csr is not None
        head_c, tail_c = _cut_csr(self.csr, k)
        head_w, tail_w = _cut_csr(self.words, k) if self.words is not None else (None, None)
        return (
            _Piece(None, head_c, head_l, self.positions[:k], head_w, head_u),  # type: ignore[arg-type]
            _Piece(None, tail_c, tail_l, self.positions[k:], tail_w, tail_u),  # type: ignore[arg-type]
        )


def _cut(array: np.ndarray | None, k: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    return (None, None) if array is None else (array[:k], array[k:])


def _cut_csr(csr: tuple[np.ndarray, ...], k: int) -> tuple[tuple[np.ndarray, ...], ...]:
    """The first ``k`` rows of CSR arrays ``(indptr, *flat)``, and the rest."""
    indptr, *flat = csr
    cut = int(indptr[k])
    head = (indptr[: k + 1], *(a[:cut] for a in flat))
    tail = (indptr[k:] - cut, *(a[cut:] for a in flat))
    return head, tail


class _Pipe:
    """A queue bounded by the bytes it holds rather than by items, so that the reader can
    run a whole chunk (a Parquet row group, an 8 MB text block) ahead of the consumer: with
    a few batches of room only, decoding the next chunk would wait for this one's batches to
    be consumed, and reading and training would take turns instead of overlapping. The
    budget follows the chunk size, so small chunks keep memory small."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0
        self.items: collections.deque[tuple[object, int]] = collections.deque()
        self.cond = threading.Condition()

    def put(self, item: object, size: int, stop: threading.Event) -> bool:
        with self.cond:
            while self.held and self.held + size > self.budget:
                if stop.is_set():
                    return False
                self.cond.wait(timeout=0.1)
            self.items.append((item, size))
            self.held += size
            self.cond.notify_all()
            return not stop.is_set()

    def get(self) -> object:
        with self.cond:
            while not self.items:
                self.cond.wait()
            item, size = self.items.popleft()
            self.held -= size
            self.cond.notify_all()
            return item

    def clear(self) -> None:
        with self.cond:
            self.items.clear()
            self.held = 0
            self.cond.notify_all()


class _Reader:
    """The read-ahead thread of one iteration: started at once, stopped and joined by
    :meth:`stop` (by the iteration's end, or at exit if the iteration was abandoned)."""

    live: ClassVar[set[_Reader]] = set()

    def __init__(self, produce: Callable[[_Pipe, threading.Event], None]) -> None:
        self.pipe = _Pipe(0)
        self.halt = threading.Event()
        self.thread = threading.Thread(
            target=produce, args=(self.pipe, self.halt), name="streamfit-reader", daemon=True
        )
        _Reader.live.add(self)
        self.thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self.halt.set()
        self.pipe.clear()  # wakes a reader waiting for room
        self.thread.join(JOIN_SECONDS if timeout is None else timeout)
        if self.thread.is_alive():
            log.warning(
                "the read-ahead thread is still blocked in a read after %.0f s; "
                "it ends with the process",
                JOIN_SECONDS if timeout is None else timeout,
            )
        _Reader.live.discard(self)


@atexit.register
def _stop_abandoned_readers() -> None:
    """Stop the readers of iterations never closed, before the interpreter finalizes."""
    for reader in list(_Reader.live):
        reader.stop()


def _nbytes(batch: Batch) -> int:
    f = batch.features
    tensors = [f.indptr, f.indices, f.values] if isinstance(f, CSR) else [f]
    if batch.labels is not None:
        tensors.append(batch.labels)
    return sum(t.numel() * t.element_size() for t in tensors)


class Batcher:
    """Iterate fixed-size :class:`Batch` es from ``source``, starting at position ``skip``.

    Every batch has ``batch_size`` rows except the last of the stream. A batch's
    ``end_position`` is where a resumed read must start to continue after it. The reader
    keeps about one chunk of batches ready (at most ``prefetch_bytes``, at least one batch).

    >>> import tempfile, os
    >>> from streamfit.data.source import open_source
    >>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("1,0.5,2\\n0,1.5,3\\n1,2.5,4\\n")
    >>> [b.n_rows for b in Batcher(open_source(path), 2)]
    [2, 1]
    """

    def __init__(
        self,
        source: Source,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        skip: int = 0,
        n_features: int | None = None,
        prefetch_bytes: int = 256 << 20,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"mini_batch_size must be positive, got {batch_size}")
        self.source = source
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.skip = skip
        self.n_features = n_features
        self.prefetch_bytes = prefetch_bytes

    def __iter__(self) -> Iterator[Batch]:
        reader = _Reader(self._produce)
        try:
            while True:
                item = reader.pipe.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Batch)
                if self.device.type != "cpu":
                    item = _to_device(item, self.device)
                yield item
        finally:
            reader.stop()

    def inline(self) -> Iterator[Batch]:
        """The same batches, read in the caller's thread, without reading ahead: for an input
        read whole at once (the model server's request bodies), where starting the thread
        costs more than the read.

        >>> import io
        >>> from streamfit.data.source import PipeSource, SourceOptions
        >>> body = io.BytesIO(b"0.5,2\\n1.5,3\\n")
        >>> source = PipeSource("body", body, SourceOptions(labelled=False))
        >>> [b.features.tolist() for b in Batcher(source, 10).inline()]
        [[[0.5, 2.0], [1.5, 3.0]]]
        """
        return self._batches(_Pipe(self.prefetch_bytes), threading.Event())

    # -- producer thread -------------------------------------------------------------------

    def _produce(self, q: _Pipe, stop: threading.Event) -> None:
        try:
            for batch in self._batches(q, stop):
                if not q.put(batch, _nbytes(batch), stop):
                    return
            q.put(_END, 0, stop)
        except BaseException as exc:  # handed to the consumer, which raises it
            q.put(exc, 0, stop)

    def _batches(self, q: _Pipe, stop: threading.Event) -> Iterator[Batch]:
        pending: list[_Piece] = []
        n_pending = 0
        bad: list[np.ndarray] = []
        last_end = self.skip
        sparse: bool | None = None
        for chunk in self.source.read(self.skip, self._source_width(), stop=stop):
            if stop.is_set():
                return
            q.budget = min(self.prefetch_bytes, max(q.budget, chunk.batch.nbytes * 3 // 2))
            if chunk.n_rows == 0:  # only bad rows: no say in the layout
                pass
            elif sparse is None:
                sparse = is_sparse(chunk.batch)
            elif sparse != is_sparse(chunk.batch):
                raise ConfigError(f"{self.source.name}: mixes dense and sparse rows")
            if chunk.bad.size:
                bad.append(chunk.bad)
            if chunk.n_rows:
                piece = self._piece(chunk, bool(sparse))
                pending.append(piece)
                n_pending += piece.n
            last_end = chunk.end
            # Hold one full batch back: the stream's last batch must carry its end position.
            while n_pending > self.batch_size:
                rows, pending = _take(pending, self.batch_size)
                n_pending -= self.batch_size
                end = int(rows[-1].positions[-1]) + 1
                yield self._make(rows, end, _count_before(bad, end))
        if n_pending or bad:
            yield self._make(pending, last_end, _count_before(bad, last_end + 1))

    def _source_width(self) -> int | None:
        return self.n_features

    def _piece(self, chunk: Chunk, sparse: bool) -> _Piece:
        labels = labels_array(chunk.batch)
        if sparse:
            if self.n_features is None:
                raise ConfigError(
                    f"{self.source.name}: sparse data needs feature_dim (the number of "
                    "features; every index must be below it)"
                )
            return _Piece(
                None,
                sparse_arrays(chunk.batch),
                labels,
                chunk.positions,
                word_arrays(chunk.batch),
                chunk.unknown,
            )
        x = dense_arrays(chunk.batch)
        if self.n_features is None and len(x):
            self.n_features = int(x.shape[1])
        return _Piece(x, None, labels, chunk.positions)

    def _make(self, rows: list[_Piece], end: int, skipped: int) -> Batch:
        labels = None
        if rows and rows[0].labels is not None:
            labels = _tensor(np.concatenate([r.labels for r in rows if r.labels is not None]))
        words = None
        if rows and rows[0].csr is not None:
            width = int(self.n_features or 0)
            features: torch.Tensor | CSR = _csr([r.csr for r in rows if r.csr is not None], width)
            if rows[0].words is not None:
                held = [r.words for r in rows if r.words is not None]
                entries = _csr([w[:3] for w in held], width)
                words = Words(entries, np.concatenate([w[3] for w in held]).tolist())
        else:
            parts = [r.x for r in rows if r.x is not None]
            width = int(self.n_features or 0)
            x = (
                np.concatenate(parts)
                if len(parts) > 1
                else (parts[0] if parts else np.empty((0, width), np.float32))
            )
            features = _tensor(x)
        if self.device.type == "cuda":
            features = _pin(features)
            labels = None if labels is None else labels.pin_memory()
        unknown = sum(int(r.unknown.sum()) for r in rows if r.unknown is not None)
        return Batch(
            features, labels, end_position=end, skipped=skipped, words=words, unknown_words=unknown
        )


def _csr(parts: list[tuple[np.ndarray, ...]], width: int) -> CSR:
    """One CSR of the rows of ``parts``, each ``(indptr, indices, values)``."""
    indptrs, indices, values, total = [np.zeros(1, np.int64)], [], [], 0
    for ip, ix, vs in parts:
        indptrs.append(ip[1:] - ip[0] + total)
        indices.append(ix)
        values.append(vs)
        total += int(ip[-1] - ip[0])
    return CSR(
        _tensor(np.concatenate(indptrs)),
        _tensor(np.concatenate(indices)),
        _tensor(np.concatenate(values)),
        width,
    )


def _take(pending: list[_Piece], k: int) -> tuple[list[_Piece], list[_Piece]]:
    """The first ``k`` rows of ``pending``, and what remains."""
    taken: list[_Piece] = []
    while k:
        head = pending[0]
        if head.n <= k:
            taken.append(pending.pop(0))
            k -= head.n
        else:
            first, rest = head.split(k)
            taken.append(first)
            pending[0] = rest
            k = 0
    return taken, pending


def _count_before(bad: list[np.ndarray], end: int) -> int:
    """Count (and drop) the bad positions below ``end``."""
    count = 0
    while bad:
        arr = bad[0]
        k = int(np.searchsorted(arr, end))
        count += k
        if k < len(arr):
            bad[0] = arr[k:]
            break
        bad.pop(0)
    return count


def _tensor(a: np.ndarray) -> torch.Tensor:
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:  # zero-copy views of Arrow buffers are read-only
        a = a.copy()
    return torch.from_numpy(a)


def _pin(features: torch.Tensor | CSR) -> torch.Tensor | CSR:
    if isinstance(features, CSR):
        return CSR(
            features.indptr.pin_memory(),
            features.indices.pin_memory(),
            features.values.pin_memory(),
            features.n_cols,
        )
    return features.pin_memory()


def _to_device(batch: Batch, device: torch.device) -> Batch:
    features = batch.features.to(device, non_blocking=True)
    labels = None if batch.labels is None else batch.labels.to(device, non_blocking=True)
    # The words stay on the CPU, where a sketch counts them.
    return replace(batch, features=features, labels=labels)
