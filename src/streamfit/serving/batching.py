"""Server-side batching: requests that arrive within a few milliseconds of each other are
read together and answered by one ``predict`` over their rows, and the answers split back.

One read and one predict of 32 rows cost little more than of one row (a parse's fixed cost
is most of a one-row request's), so under concurrent clients this turns many small calls into
a few larger ones. Reads and predicts run in one worker thread per model, so the event loop
goes on taking requests meanwhile.
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
from streamfit.errors import StreamfitError
from streamfit.serving.codecs import Body, Rows, decode_rows, join_bodies

__all__ = ["MicroBatcher", "answer_bodies", "concat_features", "predict_rows"]

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
            # Bodies are read on the CPU; a model on a GPU (--device cuda) takes its rows there.
            joined = concat_features([requests[i].features for i in members]).to(model.device)
            records = model.records(model.predict(joined))
            start = 0
            for i in members:
                end = start + requests[i].n_rows
                answers[i] = records[start:end]
                start = end
    return answers


def answer_bodies(model: Model, bodies: Sequence[Body], max_rows: int) -> list[Records | Exception]:
    """The answers to each of ``bodies``, or the error that refuses it.

    Bodies of one line format are parsed together, in one read: a parse costs about the
    same for one row as for a few hundred. If that read fails, or its rows do not add up to
    the bodies' lines, each body is read alone, so that each is answered or refused on its
    own rows, as it would have been alone. ``max_rows`` is the most rows one body may hold.
    """
    results: list[Records | Exception] = [[] for _ in bodies]
    # Each entry: rows, and the bodies they answer with how many rows of them each has.
    reads: list[tuple[Rows, list[tuple[int, int]]]] = []
    groups: dict[str, list[int]] = {}
    for i, body in enumerate(bodies):
        groups.setdefault(body.fmt, []).append(i)
    for members in groups.values():
        counts = [bodies[i].lines for i in members]
        if len(members) > 1 and all(n is not None and 0 < n <= max_rows for n in counts):
            total = sum(n for n in counts if n is not None)
            try:
                rows = decode_rows(model, join_bodies([bodies[i] for i in members]), total)
            except StreamfitError:
                pass  # a bad body among them: each is read alone below
            else:
                if rows.n_rows == total:
                    reads.append((rows, list(zip(members, counts, strict=True))))  # type: ignore[arg-type]
                    continue
        for i in members:
            try:
                rows = decode_rows(model, bodies[i], max_rows)
            except StreamfitError as exc:
                results[i] = exc
            else:
                reads.append((rows, [(i, rows.n_rows)]))
    if reads:
        try:
            answers = predict_rows(model, [rows for rows, _ in reads])
        except Exception as exc:  # every request of this call is told
            for _, owners in reads:
                for i, _n in owners:
                    results[i] = exc
            return results
        for answer, (_, owners) in zip(answers, reads, strict=True):
            start = 0
            for i, n in owners:
                results[i] = answer[start : start + n]
                start += n
    return results


@dataclass
class _Pending:
    model: Model
    body: Body
    answer: asyncio.Future[Records]

    @property
    def weight(self) -> int:
        return self.body.lines or 1


@dataclass
class MicroBatcher:
    """Gathers the bodies of requests for up to ``window`` seconds (or ``max_rows`` rows)
    after the first, then reads and answers them together with :func:`answer_bodies` in its
    worker thread; ``max_request_rows`` is the most rows one body may hold.

    Each request names the model that answers it: a batch that spans a swap of versions
    (:mod:`.versions`) answers each request with the version it was sent to.

    ``observe`` is told the row count of each model call (the batch-size histogram).
    :meth:`start` and :meth:`stop` run in the server's event loop (its lifespan).
    """

    window: float
    max_rows: int
    max_request_rows: int
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

    async def predict(self, model: Model, body: Body) -> Records:
        """``model``'s answers to the rows of ``body``, read and predicted with those beside
        it."""
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running (start it in the server's lifespan)")
        pending = _Pending(model, body, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.answer

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            n_rows = batch[0].weight
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
                n_rows += item.weight
            await self._answer(loop, batch)

    async def _answer(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.answer.done()]  # a client gone is not waited for
        by_model: dict[int, list[_Pending]] = {}
        for p in live:
            by_model.setdefault(id(p.model), []).append(p)
        for group in by_model.values():
            try:
                results = await loop.run_in_executor(
                    self._pool,
                    answer_bodies,
                    group[0].model,
                    [p.body for p in group],
                    self.max_request_rows,
                )
            except Exception as exc:  # each request's handler reports it; the loop goes on
                results = [exc] * len(group)
            predicted = sum(len(r) for r in results if not isinstance(r, Exception))
            if predicted:
                self.observe(predicted)
            _settle(group, results)


def _settle(group: list[_Pending], results: list[Records | Exception]) -> None:
    for p, result in zip(group, results, strict=True):
        if p.answer.done():
            continue
        if isinstance(result, Exception):
            p.answer.set_exception(result)
        else:
            p.answer.set_result(result)
