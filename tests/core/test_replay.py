"""The replay reservoir: what it keeps depends on the keys alone (batches, merges), weights
shape what it keeps, its memory is fixed, and a saved and resumed reservoir is bit-identical."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from streamfit.core.batch import CSR, Batch
from streamfit.core.replay import (
    CSRReservoir,
    RecordReservoir,
    create_csr,
    create_records,
    create_rows,
    csr,
    open_reservoir,
)
from streamfit.core.state import State
from streamfit.errors import ConfigError, IncompatibleStateError
from streamfit.training.checkpoint import check_finite

#: Bytes per dense row of 3 features and a label: key (8), held (1), features (12), label (4).
ROW = 25


def _state(seed: int = 0) -> State:
    return State("demo", {}, 3, generator=torch.Generator().manual_seed(seed))


def _rows(n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g), torch.arange(n, dtype=torch.float32)


def _sparse_rows(n: int, seed: int = 1) -> tuple[CSR, torch.Tensor]:
    """Rows of 0 to 9 non-zeros among 50 columns; row ``i``'s values are all ``i``, so that a
    row read back can be checked whole."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 10, (n,), generator=g)
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=indptr[1:])
    indices = torch.randint(0, 50, (int(indptr[-1]),), generator=g)
    values = torch.repeat_interleave(torch.arange(n, dtype=torch.float32), lengths)
    return CSR(indptr, indices, values, 50), torch.arange(n, dtype=torch.float32)


def _held_by_key(res: RecordReservoir | CSRReservoir) -> list[tuple[float, float]]:
    """(key, label) of every held item, by key: the reservoir's content, whatever its slots."""
    held = res.held()
    keys = res.state.tensors["replay.keys"][held]
    labels = (
        res.state.tensors["replay.field.labels"][held]
        if isinstance(res, RecordReservoir)
        else res.state.tensors["replay.labels"][held]
    )
    return sorted(zip(keys.tolist(), labels.tolist(), strict=True), reverse=True)


def _same_state(a: State, b: State) -> None:
    assert a.tensors.keys() == b.tensors.keys()
    for name, t in a.tensors.items():
        assert torch.equal(t, b.tensors[name]), name
    assert a.meta == b.meta
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


# -- what is kept depends on the keys alone -------------------------------------------------


@pytest.mark.parametrize(("sparse", "chunk"), [(False, 0), (True, 1 << 18), (True, 7)])
def test_batches_and_merges_keep_the_same_items_as_one_offer_of_everything(
    sparse: bool, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With compactions in one chunk and in chunks of 7 non-zeros (rows straddle them)."""
    monkeypatch.setattr(csr, "COMPACT_CHUNK", chunk)
    n = 600
    keys = torch.log(torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(5)))

    def build(state: State) -> RecordReservoir | CSRReservoir:
        if sparse:
            return create_csr(state, 50, nnz=300, rows=80)
        return create_rows(state, 3, capacity_bytes=80 * ROW)

    def offer(res: RecordReservoir | CSRReservoir, lo: int, hi: int) -> None:
        if isinstance(res, CSRReservoir):
            rows, labels = _sparse_rows(n)
            take = torch.arange(lo, hi)
            res.offer(rows.select_rows(take), labels[take], keys=keys[take])
        else:
            x, y = _rows(n)
            res.offer({"features": x[lo:hi], "labels": y[lo:hi]}, keys=keys[lo:hi])

    whole = build(_state())
    offer(whole, 0, n)
    batched = build(_state())
    for lo in range(0, n, 37):
        offer(batched, lo, min(lo + 37, n))
    a, b = build(_state()), build(_state())
    for lo in range(0, n // 2, 50):
        offer(a, lo, lo + 50)
    for lo in range(n // 2, n, 50):
        offer(b, lo, lo + 50)
    a.merge(b)
    expected = _held_by_key(whole)
    assert 40 < len(expected) <= 80
    assert _held_by_key(batched) == expected
    assert _held_by_key(a) == expected
    assert a.offered == 12  # the merged reservoir has seen both halves' batches
    if sparse:  # the rows read back whole: the compactions moved them intact
        assert isinstance(a, CSRReservoir)
        held = a.held()
        rows, _ = _sparse_rows(n)
        got = a.rows(held)
        labels = a.state.tensors["replay.labels"][held].long()
        assert torch.equal(got.indptr, rows.select_rows(labels).indptr)
        assert torch.equal(got.indices, rows.select_rows(labels).indices)
        assert torch.equal(got.values, torch.repeat_interleave(labels.float(), got.indptr.diff()))
        assert int(got.indptr[-1]) <= 300


def test_a_later_row_that_fits_above_the_highest_key_cut_still_enters() -> None:
    """The rows of keys -1..-8 fill 795 of 800 non-zeros, the row of key -9 (10 non-zeros)
    is cut: a later row of key -8.5 and 5 non-zeros fits before it, as it would have had it
    come first; one of key -9.5 can never enter."""

    def rows(lengths: list[int]) -> CSR:
        indptr = torch.tensor([0, *lengths]).cumsum(0)
        return CSR(
            indptr, torch.zeros(int(indptr[-1]), dtype=torch.int64), torch.ones(int(indptr[-1])), 1
        )

    res = create_csr(_state(), 1, nnz=800, rows=100, labelled=False)
    first = [100] * 7 + [95, 10]
    res.offer(rows(first), keys=-torch.arange(1.0, 10.0, dtype=torch.float64))
    assert len(res) == 8
    res.offer(rows([5, 1]), keys=torch.tensor([-8.5, -9.5], dtype=torch.float64))
    assert len(res) == 9
    assert sorted(res.state.tensors["replay.keys"][res.held()].tolist())[0] == -8.5


def test_weights_decide_how_likely_an_item_is_kept() -> None:
    """A-ES with room for one of two items of weights 1 and 4 keeps the heavier one with
    probability 4/5."""
    kept_heavy = 0
    trials = 2000
    state = _state(11)
    for _ in range(trials):
        res = create_rows(state, 1, capacity_bytes=9 + 4 + 4)  # one slot
        assert res.slots == 1
        res.offer(
            {"features": torch.zeros(2, 1), "labels": torch.tensor([0.0, 1.0])},
            weights=torch.tensor([1.0, 4.0]),
        )
        kept_heavy += int(res.state.tensors["replay.field.labels"][0])
    assert abs(kept_heavy / trials - 0.8) < 0.03


def test_equal_weights_keep_a_uniform_sample_of_the_stream() -> None:
    state = _state(3)
    res = create_rows(state, 3, capacity_bytes=500 * ROW)
    x, y = _rows(20_000)
    for lo in range(0, 20_000, 1000):
        res.offer_batch(Batch(x[lo : lo + 1000], y[lo : lo + 1000]))
    labels = state.tensors["replay.field.labels"]
    assert len(res) == 500
    # Uniform over 0..19999: mean 10,000 with a standard error of about 260.
    assert abs(float(labels.mean()) - 10_000) < 1000
    assert float(labels.min()) < 1000 and float(labels.max()) > 19_000
    # A row kept is the row offered.
    assert torch.equal(state.tensors["replay.field.features"], x[labels.long()])


def test_zero_weights_are_never_kept_and_bad_weights_are_refused() -> None:
    res = create_rows(_state(), 3, capacity_bytes=10 * ROW)
    x, y = _rows(5)
    res.offer_batch(Batch(x, y), weights=torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0]))
    assert sorted(label for _, label in _held_by_key(res)) == [1.0, 3.0]
    for bad in (torch.tensor([1.0, -1.0, 1, 1, 1]), torch.tensor([1.0, math.nan, 1, 1, 1])):
        with pytest.raises(ConfigError, match="weights"):
            res.offer_batch(Batch(x, y), weights=bad)
    with pytest.raises(ConfigError, match="3 weights for 5"):
        res.offer_batch(Batch(x, y), weights=torch.ones(3))


# -- memory ----------------------------------------------------------------------------------


def test_memory_is_fixed_when_created_and_within_the_capacity() -> None:
    state = _state()
    capacity = 40_000
    res = create_records(
        state,
        {
            "context": ((24,), torch.float32),
            "future": ((6,), torch.float32),
            "mask": ((30,), torch.bool),
        },
        capacity,
    )
    before = {k: (tuple(t.shape), t.data_ptr()) for k, t in state.tensors.items()}
    assert res.nbytes <= capacity < res.nbytes + (9 + 24 * 4 + 6 * 4 + 30)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        res.offer(
            {
                "context": torch.randn(64, 24, generator=g),
                "future": torch.randn(64, 6, generator=g),
                "mask": torch.rand(64, 30, generator=g) < 0.9,
            }
        )
    assert {k: (tuple(t.shape), t.data_ptr()) for k, t in state.tensors.items()} == before
    check_finite("demo", state)  # no infinities for the trainer to take for divergence
    drawn = res.sample(16)
    assert (
        drawn is not None
        and drawn["mask"].dtype == torch.bool
        and drawn["context"].shape == (16, 24)
    )


def test_sparse_rows_stay_within_their_non_zeros_and_overlong_rows_are_not_kept() -> None:
    state = _state()
    res = create_csr(state, 50, nnz=400, rows=100, labelled=False)
    shapes = {k: tuple(t.shape) for k, t in state.tensors.items()}
    rows, _ = _sparse_rows(3000)
    for lo in range(0, 3000, 100):
        res.offer(rows.select_rows(torch.arange(lo, lo + 100)))
        held = res.held()
        assert int(state.tensors["replay.length"][held].sum()) <= 400
    assert {k: tuple(t.shape) for k, t in state.tensors.items()} == shapes
    assert len(res) > 50
    long_row = CSR(torch.tensor([0, 60]), torch.arange(60), torch.ones(60), 50)
    fresh = create_csr(_state(), 50, nnz=400, rows=100, labelled=False)
    fresh.offer(long_row)  # more than an eighth of the capacity
    assert len(fresh) == 0
    dense = create_csr(_state(), 50, nnz=400, rows=100)
    dense.offer_batch(Batch(torch.eye(50)[:3], torch.ones(3)))  # dense rows are stored sparse
    got = dense.sample_batch(10)
    assert got is not None and got.is_sparse and got.n_rows == 3


# -- sampling, resuming, errors ------------------------------------------------------------------


def test_samples_come_from_what_is_held_and_an_empty_reservoir_gives_none() -> None:
    res = create_rows(_state(), 3, capacity_bytes=50 * ROW)
    assert res.sample_batch(8) is None
    x, y = _rows(1000)
    res.offer_batch(Batch(x, y))
    held = {label for _, label in _held_by_key(res)}
    drawn = res.sample_batch(200)
    assert drawn is not None and drawn.n_rows == 50  # no more than is held
    assert drawn.labels is not None and set(drawn.labels.tolist()) <= held
    assert torch.equal(drawn.dense_features(), x[drawn.labels.long()])
    assert drawn.replayed and not Batch(x, y).replayed  # already checked when fresh
    # slots freed in the middle (not the prefix that filling from the lowest leaves)
    held_mask = res.state.tensors["replay.held"]
    held_mask[10:20] = False
    still = {label for _, label in _held_by_key(res)}
    drawn_labels: set[float] = set()
    for _ in range(30):  # 40 draws (with replacement) a call, from the 40 still held
        again = res.sample_batch(2000)
        assert again is not None and again.labels is not None
        drawn_labels |= set(again.labels.tolist())
    assert drawn_labels == still


def test_held_slots_and_new_items_fill_gaps_from_the_lowest_free_slot() -> None:
    """held() and the slots of new items, whether the held slots are a prefix (the fast
    path: a count, no scan) or have gaps."""
    res = create_rows(_state(), 3, capacity_bytes=50 * ROW)
    x, y = _rows(20)
    res.offer_batch(Batch(x, y))
    mask = res.state.tensors["replay.held"]
    assert res.held().tolist() == list(range(20))  # a prefix
    mask[[3, 7]] = False
    assert res.held().tolist() == [i for i in range(20) if i not in (3, 7)]
    res.offer_batch(Batch(*_rows(3, seed=2)))  # room for all: the gaps, then slot 20
    assert res.held().tolist() == list(range(21))
    assert res.state.tensors["replay.field.labels"][[3, 7, 20]].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("sparse", [False, True])
def test_a_saved_and_resumed_reservoir_equals_the_uninterrupted_one(
    sparse: bool, tmp_path: Path
) -> None:
    def build() -> State:
        state = _state(7)
        if sparse:
            create_csr(state, 50, nnz=200, rows=60)
        else:
            create_rows(state, 3, capacity_bytes=60 * ROW)
        return state

    def feed(state: State, lo: int, hi: int) -> None:
        res = open_reservoir(state)
        for start in range(lo, hi, 40):
            if sparse:
                rows, labels = _sparse_rows(2000)
                take = torch.arange(start, start + 40)
                res.offer_batch(Batch(rows.select_rows(take), labels[take]))
            else:
                x, y = _rows(2000)
                res.offer_batch(Batch(x[start : start + 40], y[start : start + 40]))
            res.sample_batch(16)  # draws from the generator too

    whole = build()
    feed(whole, 0, 2000)
    part = build()
    feed(part, 0, 800)
    part.save(tmp_path / "state")
    resumed = State.load(tmp_path / "state")
    feed(resumed, 800, 2000)
    _same_state(whole, resumed)


def test_layouts_and_fields_are_checked() -> None:
    state = _state()
    res = create_rows(state, 3, capacity_bytes=10 * ROW)
    with pytest.raises(ConfigError, match="fields"):
        res.offer({"features": torch.zeros(2, 3)})
    with pytest.raises(ConfigError, match="shape"):
        res.offer({"features": torch.zeros(2, 4), "labels": torch.zeros(2)})
    with pytest.raises(ConfigError, match="has none"):
        res.offer_batch(Batch(torch.zeros(2, 3)))
    with pytest.raises(ConfigError, match="not even one"):
        create_rows(_state(), 3, capacity_bytes=10)
    other = create_rows(_state(), 3, capacity_bytes=20 * ROW)
    with pytest.raises(IncompatibleStateError, match="layout"):
        res.merge(other)
    with pytest.raises(IncompatibleStateError, match="no replay reservoir"):
        open_reservoir(_state())
