"""Factorization Machines' packed candidates: each trains as it would alone, the held-out
reservoir chooses among them, ``finalize`` reselects without data, more epochs hold rows out,
a diverging candidate is dropped, and states of one model from before packing continue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import streamfit
from streamfit import Batch
from streamfit.algorithms.factorization_machines import FactorizationMachines
from streamfit.algorithms.factorization_machines.choice import HOLD_OUT, held_out
from streamfit.algorithms.factorization_machines.hyperparameters import (
    FactorizationMachinesHyperparameters,
)
from streamfit.core.batch import CSR
from streamfit.core.state import State
from streamfit.datagen import fm_task, write_batches

HP = {"feature_dim": 64, "num_factors": 4, "predictor_type": "binary_classifier"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(n_batches: int, d: int = 64, rows: int = 50, seed: int = 0) -> list[Batch]:
    """Rows of 5 features whose label depends on a pair (an interaction to learn)."""
    out = []
    for i in range(n_batches):
        g = torch.Generator().manual_seed(seed + i)
        indices = torch.randint(d, (rows * 5,), generator=g)
        x = CSR(torch.arange(0, rows * 5 + 1, 5), indices, torch.ones(rows * 5), d)
        dense = x.to_dense()
        y = ((dense[:, 0] + dense[:, 1] + dense[:, 2] * dense[:, 3]) > 0).float()
        y = torch.where(torch.rand(rows, generator=g) < 0.1, 1 - y, y)
        out.append(Batch(x, y, end_position=(i + 1) * rows))
    return out


def _train(hp: dict[str, object], batches: list[Batch]) -> tuple[FactorizationMachines, State]:
    algo = FactorizationMachines(hp)
    state = algo.init_state(hp["feature_dim"])  # type: ignore[arg-type]
    for batch in batches:
        algo.update(state, batch)
    return algo, state


def _alone(state: State, c: int, hp: dict[str, object]) -> State:
    """Candidate ``c`` of a packed state as a single model's state, with its settings."""
    k = int(hp["num_factors"])  # type: ignore[call-overload]
    single = FactorizationMachines({**hp, "num_models": 1}).init_state(state.n_features)
    block = slice(c * (k + 1), (c + 1) * (k + 1))
    t, s = state.tensors, single.tensors
    s["table"] = t["table"][:, :, block].clone()
    for name in ("w0", "w0.v", "linear_lr", "factors_lr", "linear_wd", "factors_wd"):
        s[name] = t[name][c : c + 1].clone()
    return single


def test_num_models_auto_packs_8_unless_a_rate_is_given_or_the_table_is_huge() -> None:
    def models(**given: object) -> int:
        return FactorizationMachinesHyperparameters(**{**HP, **given}).num_models

    assert models() == 8
    assert models(linear_lr=0.01) == 1  # a SageMaker job's one model
    assert models(linear_lr=0.01, num_models=3) == 3
    # 10^6 features x 65 floats x 2 slots is 520 MB a candidate: 4 fit in 2 GiB.
    assert models(feature_dim=10**6, num_factors=64) == 4
    assert models(feature_dim=10**8, num_factors=64) == 1
    small, packed = (
        FactorizationMachines({**HP, "num_factors": 64, "num_models": m}).state_bytes(10**6)
        for m in (1, 8)
    )
    assert 7.8 * small < packed < 8 * small  # the table is nearly all of it


def test_candidate_zero_is_the_single_model() -> None:
    """The same initial values (candidate 0 draws first) and the same steps; only the
    rounding of sums over wider rows may differ."""
    batches = _batches(20)
    algo, packed = _train({**HP, "num_models": 4}, batches)
    one, single = _train({**HP, "num_models": 1}, batches)
    first, again = (
        FactorizationMachines(HP).init_state(64),
        FactorizationMachines({**HP, "num_models": 1}).init_state(64),
    )
    assert torch.equal(first.tensors["table"][:, 0, :5], again.tensors["table"][:, 0])
    a, b = algo.finalize(packed, candidate=0), one.finalize(single)
    for key in ("w0", "w", "v"):
        torch.testing.assert_close(a.tensors[key], b.tensors[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sparse", [True, False])
def test_every_candidate_trains_as_it_would_alone(sparse: bool) -> None:
    """Packed side by side, candidates do not interact: each equals a single model started
    from its initial values with its own rates and decays (to the rounding of sums over
    wider rows)."""
    hp = {**HP, "num_models": 4}
    batches = _batches(15)
    if not sparse:
        batches = [
            Batch(b.dense_features(), b.labels, end_position=b.end_position) for b in batches
        ]
    algo = FactorizationMachines(hp)
    packed = algo.init_state(64)
    alone = [_alone(packed, c, hp) for c in range(4)]
    assert len({float(s.tensors["factors_lr"][0]) for s in alone}) > 2  # they differ
    one = FactorizationMachines({**hp, "num_models": 1})
    for batch in batches:
        algo.update(packed, batch)
        for state in alone:
            one.update(state, batch)
    for c, state in enumerate(alone):
        ours, theirs = algo.finalize(packed, candidate=c), one.finalize(state, candidate=0)
        for key in ("w0", "w", "v"):
            torch.testing.assert_close(
                ours.tensors[key], theirs.tensors[key], rtol=1e-5, atol=1e-6, msg=f"{c} {key}"
            )


def test_finalize_chooses_the_best_held_out_candidate_and_reselects_without_data() -> None:
    algo, state = _train({**HP, "num_models": 6}, _batches(60))
    model = algo.finalize(state)
    selection = model.meta["selection"]
    values = [c["value"] for c in selection["candidates"]]
    assert selection["source"] == "train" and selection["criterion"] == "loss_function"
    assert selection["rows"] == 3000  # every row so far: fewer than the reservoir holds
    assert model.meta["candidate"] == int(np.argmax(values)) == selection["best"]
    assert model.meta["threshold"] == 0.5
    # The chosen candidate's held-out log loss is what the reservoir's rows give it.
    rows = torch.cat([b.dense_features() for b in _batches(60)])
    labels = torch.cat([b.labels for b in _batches(60) if b.labels is not None])
    worst = int(np.argmin(values))
    other = algo.finalize(state, candidate=worst)
    assert other.meta["candidate"] == worst and other.meta["linear_lr"] != model.meta["linear_lr"]
    assert not torch.equal(other.predict(rows)["score"], model.predict(rows)["score"])
    # Another criterion: its best candidate and a threshold of its own, still no data read.
    by_accuracy = algo.finalize(state, binary_classifier_model_selection_criteria="accuracy")
    assert by_accuracy.meta["selection"]["criterion"] == "accuracy"
    threshold = by_accuracy.meta["threshold"]
    assert 0 < threshold < 1 and threshold != 0.5
    labels_at = (by_accuracy.predict(rows)["score"] >= threshold).long()
    assert torch.equal(by_accuracy.predict(rows)["predicted_label"], labels_at)
    assert labels.numel() == rows.shape[0]


def test_a_candidate_that_diverges_is_dropped_not_fatal() -> None:
    algo = FactorizationMachines({**HP, "num_models": 3, "factors_init_sigma": 0.5})
    state = algo.init_state(64)
    state.tensors["factors_lr"][1] = 1e30
    state.tensors["linear_lr"][1] = 1e30
    losses = [algo.update(state, batch) for batch in _batches(10)]
    assert all(np.isfinite(losses))
    assert not torch.isfinite(state.tensors["loss_sum"][1])
    model = algo.finalize(state)
    assert model.meta["candidate"] != 1
    assert model.meta["selection"]["candidates"][1]["value"] is None


def test_more_epochs_hold_rows_out_and_score_them_in_the_latest_epoch() -> None:
    """With epochs > 1, 1 row in 16 (by position) is never trained on; the reservoir holds
    this epoch's scores of those rows only. One-hot rows, one feature each: a held-out row's
    feature never moves."""
    n = 800
    x = CSR(torch.arange(n + 1), torch.arange(n), torch.ones(n), n)
    batch = Batch(x, (torch.arange(n) % 2).float(), end_position=n)
    held = held_out(batch)
    assert 0.5 * n / HOLD_OUT < int(held.sum()) < 1.5 * n / HOLD_OUT
    hp = {**HP, "feature_dim": n, "num_models": 2, "epochs": 3}
    algo = FactorizationMachines(hp)
    state = algo.init_state(n)
    before = state.tensors["table"].clone()
    for epoch in range(3):
        state.position.epoch = epoch
        algo.update(state, batch)
    moved = (state.tensors["table"] != before).flatten(1).any(1)
    assert torch.equal(moved, ~held)
    assert state.meta["calib_filled"] == int(held.sum())  # scored again, not piled up
    assert torch.equal(state.tensors["calib_labels"][: int(held.sum())], batch.labels[held])
    # One epoch: progressive validation, every row trained on and remembered; one model
    # has nothing to choose, so trains on every row too.
    for other in ({**hp, "epochs": 1}, {**hp, "num_models": 1}):
        one = FactorizationMachines(other)
        state = one.init_state(n)
        one.update(state, batch)
        assert bool((state.tensors["table"][:, :, :5] != before[:, :, :5]).flatten(1).any(1).all())
        assert state.meta["calib_filled"] == n


def test_a_validation_channel_chooses_and_lets_later_epochs_train_on_every_row(
    tmp_path: Path,
) -> None:
    task = fm_task(n_features=256, n_fields=6, num_factors=4, seed=3)
    train, valid = tmp_path / "train.parquet", tmp_path / "valid.parquet"
    write_batches(train, task.blocks(4000, block=2000))
    write_batches(valid, task.blocks(1000, offset=10**9))
    hp = {**HP, "feature_dim": 256, "num_models": 3, "epochs": 2}
    result = streamfit.train(
        "factorization-machines",
        str(train),
        validation=str(valid),
        hyperparameters=hp,
        progress=False,
    )
    selection = result.model.meta["selection"]
    assert selection["source"] == "validation" and selection["rows"] == 1000
    assert result.state.meta["hold_out"] is False
    # Epoch 1 held 1 row in 16 out; epoch 2 trained on all 4,000.
    assert 4000 + 3500 < result.model.meta["rows"] < 8000


def test_a_state_of_one_model_from_before_packing_continues(tmp_path: Path) -> None:
    """The layout of states saved before candidates were packed: one model's table, its
    loss in meta, no reservoir and no settings; it finalizes and trains as one candidate."""
    hp = {**HP, "optimizer": "adam", "linear_lr": 0.01, "factors_lr": 0.01}
    algo, state = _train(hp, _batches(5))
    reference = state.clone()
    old = state.clone()
    old.hyperparameters = {k: v for k, v in old.hyperparameters.items() if k != "num_models"}
    kept = ("w0", "w0.m", "w0.v", "table", "touches")
    old.tensors = {k: v for k, v in old.tensors.items() if k in kept}
    old.meta = {
        "step": old.meta["step"],
        "loss_sum": float(reference.tensors["loss_sum"][0]),
        "loss_rows": old.meta["loss_rows"],
    }
    old.save(tmp_path / "old")
    loaded = State.load(tmp_path / "old")
    for batch in _batches(5, seed=100):
        algo.update(loaded, batch)
        algo.update(reference, batch)
    a, b = algo.finalize(loaded), algo.finalize(reference)
    for key in ("w0", "w", "v"):
        assert torch.equal(a.tensors[key], b.tensors[key]), key
    assert a.meta["train_metrics"] == b.meta["train_metrics"]
    streamfit.train(  # incremental training from it: one candidate, as it was
        "factorization-machines",
        _write_rows(tmp_path / "more.parquet"),
        init_state=tmp_path / "old",
        progress=False,
    )


def _write_rows(path: Path) -> str:
    task = fm_task(n_features=64, n_fields=4, num_factors=2, seed=1)
    write_batches(path, task.blocks(500))
    return str(path)


def test_another_number_of_candidates_cannot_continue_a_state() -> None:
    state = FactorizationMachines({**HP, "num_models": 4}).init_state(64)
    with pytest.raises(streamfit.IncompatibleStateError, match="num_models"):
        FactorizationMachines({**HP, "num_models": 2}).adopt(state)
