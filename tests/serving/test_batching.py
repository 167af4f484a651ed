"""Requests arriving together are read together and share one predict, and each gets its
own rows' answers, or its own error."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch

from streamfit.core.batch import CSR
from streamfit.core.model import Model
from streamfit.core.registry import load_model
from streamfit.errors import DataError
from streamfit.serving.batching import MicroBatcher, answer_bodies, concat_features, predict_rows
from streamfit.serving.codecs import Body, Rows, read_body
from streamfit.serving.errors import PayloadTooLarge, RequestError
from tests.serving.conftest import Models, assert_close, csv_body, recordio_body, rows


def _rows(n: int, seed: int) -> Rows:
    return Rows(torch.from_numpy(rows(n, seed)), n)


def _csv(n: int, seed: int) -> Body:
    return Body("csv", csv_body(rows(n, seed)))


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


def _alone(model: object, body: Body) -> object:
    return answer_bodies(model, [body], 100)[0]  # type: ignore[arg-type]


def test_bodies_read_together_answer_as_each_alone(models: Models) -> None:
    model = load_model(models.ll)
    x = rows(3, seed=7)
    lines = b"".join(json.dumps({"features": r.tolist()}).encode() + b"\n" for r in x)
    bodies = [
        _csv(1, 0),
        Body("csv", b"\n" + csv_body(rows(2, 1)).rstrip(b"\n")),  # blank lines, no last newline
        Body("jsonl", lines),
        read_body(json.dumps({"instances": x.tolist()}).encode(), "application/json"),
        Body("recordio", recordio_body(rows(2, 3))),
        _csv(4, 4),
    ]
    together = answer_bodies(model, bodies, 100)
    assert [len(a) for a in together] == [1, 2, 3, 3, 2, 4]  # type: ignore[arg-type]
    assert_close(together, [_alone(model, b) for b in bodies])


def test_a_bad_body_among_good_ones_is_refused_alone_with_its_own_row(models: Models) -> None:
    model = load_model(models.ll)
    good = [_csv(2, 0), _csv(1, 1)]
    bad_csv = Body("csv", b"1,2,3,4\n1,2,x,4\n")
    wide = read_body(b'{"instances": [[1, 2, 3, 4], [1, 2, 3, 4, 5]]}', "application/json")
    sparse_first = Body("jsonl", b'{"indices": [0], "values": [1.0]}\n')
    dense = Body("jsonl", b'{"features": [1, 2, 3, 4]}\n')
    results = answer_bodies(
        model, [good[0], bad_csv, good[1], wide, sparse_first, dense, Body("csv", b"")], 100
    )
    assert_close(results[0], _alone(model, good[0]))
    assert_close(results[2], _alone(model, good[1]))
    assert isinstance(results[1], DataError)
    assert (results[1].row, results[1].field) == (2, "column 3")
    assert isinstance(results[3], DataError)
    assert str(results[3]).startswith("request body, instance 2, features: 5 features")
    assert not isinstance(results[4], Exception)  # each layout right on its own
    assert_close(results[5], _alone(model, dense))
    assert isinstance(results[6], RequestError)
    assert "no rows" in str(results[6])


def test_a_body_over_the_row_limit_is_refused_alone(models: Models) -> None:
    model = load_model(models.ll)
    results = answer_bodies(model, [_csv(3, 0), _csv(1, 1)], 2)
    assert isinstance(results[0], PayloadTooLarge)
    assert_close(results[1], _alone(model, _csv(1, 1)))


def _gather(batcher: MicroBatcher, asks: list[tuple[Model, Body]]) -> list[object]:
    async def main() -> list[object]:
        batcher.start()
        try:
            return list(
                await asyncio.gather(
                    *(batcher.predict(m, b) for m, b in asks), return_exceptions=True
                )
            )
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_requests_within_the_window_share_one_model_call(models: Models) -> None:
    model = load_model(models.ll)
    calls: list[int] = []
    bodies = [_csv(1, seed) for seed in range(8)]
    answers = _gather(MicroBatcher(0.5, 1000, 100, calls.append), [(model, b) for b in bodies])
    assert calls == [8]
    assert_close(answers, [_alone(model, b) for b in bodies])


def test_a_batch_is_answered_once_it_holds_max_rows(models: Models) -> None:
    calls: list[int] = []
    bodies = [_csv(2, seed) for seed in range(4)]
    # A window far longer than the test: only the row limit can end the batches.
    batcher = MicroBatcher(60.0, 4, 100, calls.append)
    model = load_model(models.ll)
    answers = _gather(batcher, [(model, b) for b in bodies])
    assert calls == [4, 4]
    assert [len(a) for a in answers] == [2, 2, 2, 2]  # type: ignore[arg-type]


def test_a_batch_spanning_a_swap_answers_each_request_with_its_own_model(
    models: Models,
) -> None:
    # Two models of one input width stand for two versions: the batch holds requests sent to
    # either, and each is answered by the one it was sent to.
    old, new = load_model(models.ll), load_model(models.kmeans)
    calls: list[int] = []
    bodies = [_csv(1, seed) for seed in range(4)]
    asks = [(old if i % 2 else new, b) for i, b in enumerate(bodies)]
    answers = _gather(MicroBatcher(0.5, 1000, 100, calls.append), asks)
    assert sorted(calls) == [2, 2]
    assert_close(answers, [_alone(m, b) for m, b in asks])


def test_a_bad_request_fails_alone_and_the_batcher_goes_on(models: Models) -> None:
    model = load_model(models.ll)
    bodies = [_csv(1, 0), Body("csv", b"1,2\n"), _csv(1, 2)]
    answers = _gather(MicroBatcher(0.5, 1000, 100), [(model, b) for b in bodies])
    assert isinstance(answers[1], DataError)
    assert_close([answers[0], answers[2]], [_alone(model, bodies[0]), _alone(model, bodies[2])])


def test_a_failing_model_call_fails_its_requests_not_the_batcher(models: Models) -> None:
    model = load_model(models.ll)
    tensors = dict(model.tensors)

    async def main() -> list[object]:
        batcher = MicroBatcher(0.0, 100, 100)
        batcher.start()
        try:
            model.tensors.clear()  # a model that cannot predict: a bug, no request's fault
            failed = await asyncio.gather(
                batcher.predict(model, _csv(1, 0)), return_exceptions=True
            )
            model.tensors.update(tensors)
            return [*failed, await batcher.predict(model, _csv(1, 0))]
        finally:
            await batcher.stop()

    failed, answered = asyncio.run(main())
    assert isinstance(failed, Exception) and not isinstance(failed, RequestError)
    assert_close(answered, _alone(model, _csv(1, 0)))


def test_a_batcher_not_started_says_so(models: Models) -> None:
    batcher = MicroBatcher(0.0, 100, 100)
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(batcher.predict(load_model(models.ll), _csv(1, 0)))


def test_rows_are_counted_by_non_blank_lines() -> None:
    assert Body("csv", b"1,2\n\n  \n3,4").lines == 2
    assert Body("recordio", b"").lines is None
    assert np.isscalar(Body("jsonl", b"{}\n").lines)
