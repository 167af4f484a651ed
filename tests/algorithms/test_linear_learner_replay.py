"""Linear Learner on a read that fits in memory: held-out rows, epochs over the kept rows at
the end of the read, selection on the held-out rows; a stream that outgrows the stores goes
on as one pass (streamfit.algorithms.linear_learner.replay)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.metrics import roc_auc_score

import streamfit
from streamfit.algorithms.linear_learner import LinearLearner
from streamfit.algorithms.linear_learner.replay import HOLDOUT, RESERVOIR
from streamfit.algorithms.linear_learner.selection import HOLD_OUT, held_out
from streamfit.core.batch import CSR, Batch
from streamfit.core.replay import open_reservoir
from streamfit.errors import ConfigError, DataError


def _task(n: int, d: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A logistic task whose features have very different scales and rare columns: one pass
    of a few dozen batches is far from the optimum."""
    g = np.random.default_rng(seed)
    w = np.random.default_rng(99).normal(size=d) * 1.5
    x = (g.random((n, d)) < 0.15).astype(np.float32) * g.normal(1.0, 0.3, (n, d))
    p = 1 / (1 + np.exp(-(x @ w - 1.0)))
    return x.astype(np.float32), (g.random(n) < p).astype(np.float32)


def _parquet(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    features = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    pq.write_table(pa.table({"label": y, "features": features}), path)
    return path


def _auc(model: streamfit.Model, x: np.ndarray, y: np.ndarray) -> float:
    scores = model.predict(torch.from_numpy(x))["score"].numpy()
    return float(roc_auc_score(y, scores))


def test_held_out_rows_are_one_in_sixteen_and_the_same_whoever_counts() -> None:
    rows = held_out(0, 160_000)
    assert abs(int(rows.sum()) - 160_000 / HOLD_OUT) < 50
    assert torch.equal(held_out(1000, 500), rows[1000:1500])


def test_epochs_over_a_read_that_fits_beat_one_pass_and_choose_on_held_out_rows(
    tmp_path: Path,
) -> None:
    x, y = _task(6000)
    xt, yt = _task(4000, seed=1)
    train = _parquet(tmp_path / "train.parquet", x, y)
    hp = {"predictor_type": "binary_classifier", "num_models": 8}
    kept = streamfit.train("linear-learner", str(train), hyperparameters=hp, progress=False)
    once = streamfit.train(
        "linear-learner", str(train), hyperparameters={**hp, "replay_epochs": 0}, progress=False
    )
    history = kept.state.meta["reservoir_epochs"]
    assert 1 <= len(history) <= 16
    assert kept.state.meta["calib_source"] == "held-out"
    assert kept.model.meta["selection"]["source"] == "held-out"
    # The stores go with the end of the read: the state keeps no rows.
    assert not any(k.startswith((f"{RESERVOIR}.", f"{HOLDOUT}.")) for k in kept.state.tensors)
    assert "reservoir_epochs" not in once.state.meta
    assert once.state.meta["calib_source"] == "train"
    assert kept.state.trainer.rows == 6000
    assert _auc(kept.model, xt, yt) > _auc(once.model, xt, yt) + 0.005


def test_a_stream_that_outgrows_the_stores_trains_every_row_once() -> None:
    x, y = _task(6000)
    algo = LinearLearner(predictor_type="binary_classifier", num_models=4, replay_capacity_mb=0.05)
    state = algo.init_state(x.shape[1])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    algo.prepare(state, [Batch(xt[:1000], yt[:1000])])
    assert RESERVOIR in state.meta
    for i in range(0, 6000, 500):
        algo.update(state, Batch(xt[i : i + 500], yt[i : i + 500], end_position=i + 500))
    assert RESERVOIR not in state.meta and HOLDOUT not in state.meta
    assert state.meta["rows"] == 6000  # the held-out rows were trained on when it outgrew
    algo.end_epoch(state, None)
    assert "reservoir_epochs" not in state.meta


def test_sparse_rows_are_kept_as_sparse_rows_and_replayed_as_such() -> None:
    x, y = _task(3000, d=500)
    xs = CSR.from_dense(torch.from_numpy(x))
    algo = LinearLearner(predictor_type="binary_classifier", num_models=2, replay_epochs=2)
    state = algo.init_state(500)
    labels = torch.from_numpy(y)
    first = Batch(xs.select_rows(torch.arange(1000)), labels[:1000])
    algo.prepare(state, [first])
    assert state.meta[RESERVOIR]["kind"] == "csr"
    for i in range(0, 3000, 1000):
        rows = torch.arange(i, i + 1000)
        algo.update(state, Batch(xs.select_rows(rows), labels[i : i + 1000]))
    steps = state.meta["step"]
    algo.end_epoch(state, None)
    assert len(state.meta["reservoir_epochs"]) == 2
    assert state.meta["step"] == steps + 2 * 3  # 2 epochs of ~2,800 kept rows in 1,000s


def test_merged_states_keep_both_reads_rows() -> None:
    x, y = _task(4000)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    algo = LinearLearner(predictor_type="binary_classifier", num_models=2)
    halves = []
    for part in (slice(0, 2000), slice(2000, 4000)):
        state = algo.init_state(x.shape[1])
        algo.prepare(state, [Batch(xt[part], yt[part])])
        algo.update(state, Batch(xt[part], yt[part]))
        halves.append(state)
    merged = algo.merge(*halves)
    kept = [len(open_reservoir(s, RESERVOIR)) for s in halves]
    assert len(open_reservoir(merged, RESERVOIR)) == sum(kept)
    assert merged.meta["fresh_rows"] == 4000


def test_more_than_one_epoch_keeps_no_rows() -> None:
    algo = LinearLearner(predictor_type="binary_classifier", epochs=3)
    assert algo.state_bytes(10) == LinearLearner(
        predictor_type="binary_classifier", epochs=3, replay_epochs=0
    ).state_bytes(10)
    state = algo.init_state(10)
    x, y = _task(500, d=10)
    algo.prepare(state, [Batch(torch.from_numpy(x), torch.from_numpy(y))])
    assert RESERVOIR not in state.meta


def test_replay_epochs_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="replay_epochs"):
        LinearLearner(predictor_type="binary_classifier", replay_epochs=-1)


def test_a_bad_label_in_a_held_out_row_is_refused_when_read() -> None:
    x, y = _task(200, d=5)
    assert bool(held_out(0, 200)[0])  # row 0 is held out
    y[0] = 2.0
    algo = LinearLearner(predictor_type="binary_classifier", num_models=2)
    state = algo.init_state(5)
    with pytest.raises(DataError, match=r"label 2\.0 is not a class"):
        algo.update(state, Batch(torch.from_numpy(x), torch.from_numpy(y)))
