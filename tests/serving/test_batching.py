"""Requests arriving together share one predict, and each gets its own rows' answers."""

from __future__ import annotations

import asyncio

import pytest
import torch

from streamfit.core.batch import CSR
from streamfit.core.registry import load_model
from streamfit.serving.batching import MicroBatcher, concat_features, predict_rows
from streamfit.serving.codecs import Rows
from tests.serving.conftest import Models, assert_close, rows


def _rows(n: int, seed: int) -> Rows:
    return Rows(torch.from_numpy(rows(n, seed)), n)


def test_concatenated_sparse_rows_keep_their_values() -> None:
    a, b = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 4.0]])
    joined = concat_features([CSR.from_dense(a), CSR.from_dense(b)])
    assert isinstance(joined, CSR)
    assert torch.equal(joined.to_dense(), torch.cat([a, b]))
    with pytest.raises(ValueError, match="dense and sparse"):
        concat_features([a, CSR.from_dense(b)])


def test_one_predict_answers_each_request_with_its_own_rows(models: Models) -> None:
    model = load_model(models.kmeans)
    requests = [_rows(n, seed) for seed, n in enumerate((1, 3, 2))]
    sparse = Rows(CSR.from_dense(requests[1].features), 3)  # type: ignore[arg-type]
    together = predict_rows(model, [*requests, sparse])
    alone = [predict_rows(model, [r])[0] for r in requests]
    assert [len(a) for a in together] == [1, 3, 2, 3]
    assert_close(together, [*alone, alone[1]])


def _gather(batcher: MicroBatcher, requests: list[Rows]) -> list[list[dict[str, object]]]:
    async def main() -> list[list[dict[str, object]]]:
        batcher.start()
        try:
            return list(await asyncio.gather(*(batcher.predict(r) for r in requests)))
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_requests_within_the_window_share_one_model_call(models: Models) -> None:
    model = load_model(models.ll)
    calls: list[int] = []
    requests = [_rows(1, seed) for seed in range(8)]
    answers = _gather(MicroBatcher(model, 0.5, 1000, calls.append), requests)
    assert calls == [8]
    assert_close(answers, [predict_rows(model, [r])[0] for r in requests])


def test_a_batch_is_answered_once_it_holds_max_rows(models: Models) -> None:
    calls: list[int] = []
    requests = [_rows(2, seed) for seed in range(4)]
    # A window far longer than the test: only the row limit can end the batches.
    batcher = MicroBatcher(load_model(models.ll), 60.0, 4, calls.append)
    answers = _gather(batcher, requests)
    assert calls == [4, 4]
    assert [len(a) for a in answers] == [2, 2, 2, 2]


def test_a_failing_model_call_fails_its_requests_and_not_the_batcher(models: Models) -> None:
    model = load_model(models.ll)
    bad = Rows(torch.ones(1, 7), 1)  # a width the model was not trained on
    good = _rows(1, 0)

    async def main() -> list[object]:
        batcher = MicroBatcher(model, 0.0, 100)
        batcher.start()
        try:
            first = await asyncio.gather(batcher.predict(bad), return_exceptions=True)
            return [*first, await batcher.predict(good)]
        finally:
            await batcher.stop()

    failed, answered = asyncio.run(main())
    assert isinstance(failed, Exception)
    assert answered == predict_rows(model, [good])[0]


def test_a_batcher_not_started_says_so(models: Models) -> None:
    batcher = MicroBatcher(load_model(models.ll), 0.0, 100)
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(batcher.predict(_rows(1, 0)))
