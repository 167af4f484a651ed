"""Server-side batching: requests that arrive within a few milliseconds of each other are
answered by one ``predict`` over their rows together, and the answers split back.

One predict over 32 rows costs little more than over one, so under concurrent clients this
turns many small model calls into a few larger ones. The model runs in one worker thread per
model, so the event loop keeps reading requests while it computes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from streamfit.core.batch import CSR, Features
from streamfit.core.model import Model
from streamfit.serving.codecs import Rows

__all__ = ["MicroBatcher", "concat_features", "predict_rows"]

Records = list[dict[str, Any]]


def concat_features(parts: Sequence[Features]) -> Features:
    """The rows of ``parts`` one after another (all dense or all sparse, of one width).

    >>> x = concat_features([torch.ones(1, 2), torch.zeros(2, 2)])
    >>> x.shape
    torch.Size([3, 2])
    >>> s = concat_features([CSR.from_dense(torch.eye(2)), CSR.from_dense(torch.ones(1, 2))])
    >>> s.indptr.tolist(), s.indices.tolist()
    ([0, 1, 2, 4], [0, 1, 0, 1])
    """
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, torch.Tensor) for p in parts):
        return torch.cat(parts)  # type: ignore[arg-type]
    csrs = [p for p in parts if isinstance(p, CSR)]
    if len(csrs) != len(parts):
        raise ValueError("cannot join dense and sparse rows in one batch")
    offsets = torch.tensor([0] + [c.nnz for c in csrs[:-1]]).cumsum(0)
    indptr = torch.cat(
        [csrs[0].indptr[:1]] + [c.indptr[1:] + off for c, off in zip(csrs, offsets, strict=True)]
    )
    return CSR(
        indptr,
        torch.cat([c.indices for c in csrs]),
        torch.cat([c.values for c in csrs]),
        csrs[0].n_cols,
    )


def predict_rows(model: Model, requests: Sequence[Rows]) -> list[Records]:
    """The answers to each of ``requests``, from one ``predict`` per kind of rows (dense or
    sparse, of one width) among them."""
    answers: list[Records] = [[] for _ in requests]
    groups: dict[tuple[bool, int], list[int]] = {}
    for i, rows in enumerate(requests):
        f = rows.features
        key = (isinstance(f, CSR), f.n_cols if isinstance(f, CSR) else int(f.shape[1]))
        groups.setdefault(key, []).append(i)
    with torch.inference_mode():
        for members in groups.values():
            joined = concat_features([requests[i].features for i in members])
            records = model.records(model.predict(joined))
            start = 0
            for i in members:
                end = start + requests[i].n_rows
                answers[i] = records[start:end]
                start = end
    return answers


@dataclass
class _Pending:
    rows: Rows
    answer: asyncio.Future[Records]


@dataclass
class MicroBatcher:
    """Gathers the rows of requests for up to ``window`` seconds (or ``max_rows`` rows) after
    the first, then answers them with one :func:`predict_rows` in its worker thread.

    ``observe`` is told the row count of each model call (the batch-size histogram).
    :meth:`start` and :meth:`stop` run in the server's event loop (its lifespan).
    """

    model: Model
    window: float
    max_rows: int
    observe: Callable[[int], None] = lambda rows: None
    _queue: asyncio.Queue[_Pending] = field(default_factory=asyncio.Queue, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False)

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="streamfit-predict")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    async def predict(self, rows: Rows) -> Records:
        """The answers to ``rows``, predicted together with those of requests beside it."""
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running (start it in the server's lifespan)")
        pending = _Pending(rows, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.answer

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            n_rows = batch[0].rows.n_rows
            deadline = loop.time() + self.window
            while n_rows < self.max_rows:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    timeout = deadline - loop.time()
                    if timeout <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), timeout)
                    except TimeoutError:
                        break
                batch.append(item)
                n_rows += item.rows.n_rows
            await self._answer(loop, batch, n_rows)

    async def _answer(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Pending], n_rows: int
    ) -> None:
        live = [p for p in batch if not p.answer.done()]  # a client gone is not waited for
        try:
            answers = await loop.run_in_executor(
                self._pool, predict_rows, self.model, [p.rows for p in live]
            )
        except Exception as exc:  # each request's handler reports it; the loop goes on
            for p in live:
                if not p.answer.done():
                    p.answer.set_exception(exc)
            return
        self.observe(n_rows)
        for p, answer in zip(live, answers, strict=True):
            if not p.answer.done():
                p.answer.set_result(answer)
