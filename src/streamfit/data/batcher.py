"""Fixed-size tensor batches from a source, read ahead in a background thread.

The thread parses and slices chunks while the caller computes, so I/O overlaps training.
Memory is bounded by ``prefetch`` batches plus the chunk being parsed, whatever the data size.
On CUDA the batches are staged in pinned memory and copied without blocking the reader.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from streamfit.core.batch import CSR, Batch
from streamfit.data.chunk import Chunk, dense_arrays, is_sparse, labels_array, sparse_arrays
from streamfit.data.source import Source
from streamfit.errors import ConfigError

__all__ = ["Batcher"]

_END = object()


@dataclass
class _Piece:
    """Rows of one chunk not yet batched (a row range of the chunk's arrays)."""

    x: np.ndarray | None  # dense features
    csr: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # sparse: indptr, indices, values
    labels: np.ndarray | None
    positions: np.ndarray

    @property
    def n(self) -> int:
        return len(self.positions)

    def split(self, k: int) -> tuple[_Piece, _Piece]:
        labels = self.labels
        head_l = None if labels is None else labels[:k]
        tail_l = None if labels is None else labels[k:]
        if self.x is not None:
            return (
                _Piece(self.x[:k], None, head_l, self.positions[:k]),
                _Piece(self.x[k:], None, tail_l, self.positions[k:]),
            )
        assert self.csr is not None
        indptr, indices, values = self.csr
        cut = int(indptr[k])
        head = (indptr[: k + 1], indices[:cut], values[:cut])
        tail = (indptr[k:] - cut, indices[cut:], values[cut:])
        return (
            _Piece(None, head, head_l, self.positions[:k]),
            _Piece(None, tail, tail_l, self.positions[k:]),
        )


class Batcher:
    """Iterate fixed-size :class:`Batch` es from ``source``, starting at position ``skip``.

    Every batch has ``batch_size`` rows except the last of the stream. A batch's
    ``end_position`` is where a resumed read must start to continue after it.

    >>> from streamfit.data.source import open_source
    >>> # for batch in Batcher(open_source("train.csv"), 1000): state = update(state, batch)
    """

    def __init__(
        self,
        source: Source,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        skip: int = 0,
        n_features: int | None = None,
        prefetch: int = 4,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"mini_batch_size must be positive, got {batch_size}")
        self.source = source
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.skip = skip
        self.n_features = n_features
        self.prefetch = prefetch

    def __iter__(self) -> Iterator[Batch]:
        q: queue.Queue[object] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._produce, args=(q, stop), name="streamfit-reader", daemon=True
        )
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Batch)
                if self.device.type != "cpu":
                    item = _to_device(item, self.device)
                yield item
        finally:
            # Unblock a producer waiting on a full queue; one blocked on a read of a pipe
            # cannot be interrupted and is left to exit with the process (it is a daemon).
            stop.set()
            deadline = time.monotonic() + 2.0
            while thread.is_alive() and time.monotonic() < deadline:
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)

    # -- producer thread -------------------------------------------------------------------

    def _put(self, q: queue.Queue[object], stop: threading.Event, item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, q: queue.Queue[object], stop: threading.Event) -> None:
        try:
            for batch in self._batches():
                if not self._put(q, stop, batch):
                    return
            self._put(q, stop, _END)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(q, stop, exc)

    def _batches(self) -> Iterator[Batch]:
        pending: list[_Piece] = []
        n_pending = 0
        bad: list[np.ndarray] = []
        last_end = self.skip
        sparse: bool | None = None
        for chunk in self.source.read(self.skip, self._source_width()):
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
            return _Piece(None, sparse_arrays(chunk.batch), labels, chunk.positions)
        x = dense_arrays(chunk.batch)
        if self.n_features is None and len(x):
            self.n_features = int(x.shape[1])
        return _Piece(x, None, labels, chunk.positions)

    def _make(self, rows: list[_Piece], end: int, skipped: int) -> Batch:
        labels = None
        if rows and rows[0].labels is not None:
            labels = _tensor(np.concatenate([r.labels for r in rows if r.labels is not None]))
        if rows and rows[0].csr is not None:
            indptrs, indices, values, total = [np.zeros(1, np.int64)], [], [], 0
            for r in rows:
                assert r.csr is not None
                ip, ix, vs = r.csr
                indptrs.append(ip[1:] - ip[0] + total)
                indices.append(ix)
                values.append(vs)
                total += int(ip[-1] - ip[0])
            features: torch.Tensor | CSR = CSR(
                _tensor(np.concatenate(indptrs)),
                _tensor(np.concatenate(indices)),
                _tensor(np.concatenate(values)),
                int(self.n_features or 0),
            )
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
        return Batch(features, labels, end_position=end, skipped=skipped)


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
    return Batch(features, labels, batch.end_position, batch.skipped)
