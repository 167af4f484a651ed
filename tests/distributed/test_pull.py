"""Sparse pulls, without Ray: several workers push interleaved deltas to a real
:class:`ParameterServer`, and after every pull each worker's state must be bit for bit the
server's shared state (what a full pull gives), while most pulls carry only a few rows."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from streamfit import Batch, State, get_algorithm
from streamfit.core.batch import CSR
from streamfit.core.delta import Delta, shared_view, state_delta
from streamfit.distributed.pull import Pull, Replica
from streamfit.distributed.server import ParameterServer
from streamfit.distributed.worker import LATEST_EVERY
from streamfit.training.loop import fold, warm_up

T = TypeVar("T")
WIDTH = 1 << 14


def _wire(value: T) -> T:
    """What Ray does to a call's arguments and result: the other side gets a copy."""
    copied: T = pickle.loads(pickle.dumps(value))
    return copied


def _batch(g: torch.Generator, rows: int, width: int, sparse: bool) -> Batch:
    if sparse:  # 5 features a row, skewed towards low ids as hashed categorical ids are
        nnz = 5
        cols = (torch.rand(rows * nnz, generator=g) ** 3 * width).long()
        x: Any = CSR(torch.arange(0, rows * nnz + 1, nnz), cols, torch.ones(rows * nnz), width)
        y = (cols.view(rows, nnz).sum(1) % 2).float()
    else:
        x = torch.randn(rows, width, generator=g)
        y = (x[:, 0] > 0).float()
    return Batch(x, y)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8)


def _assert_same(worker: State, server: State, rules: Any, what: str) -> None:
    full = shared_view(server, rules)
    assert full.tensors, "nothing shared: the comparison would prove nothing"
    for name, value in full.tensors.items():
        assert torch.equal(_bits(worker.tensors[name]), _bits(value)), f"{what}: {name}"
    assert worker.meta == full.meta, what
    assert worker.counters == full.counters, what
    assert worker.trainer == full.trainer, what


def _assert_same_delta(hooked: Delta, scanned: Delta, what: str) -> None:
    """The touched-rows path found bit for bit the delta that comparing everything finds."""
    assert hooked.tensors.keys() == scanned.tensors.keys(), what
    assert hooked.rows.keys() == scanned.rows.keys(), what
    for name, value in scanned.tensors.items():
        assert torch.equal(_bits(hooked.tensors[name]), _bits(value)), f"{what}: {name}"
    for name, (where, rows) in scanned.rows.items():
        assert torch.equal(hooked.rows[name][0], where), f"{what}: {name} rows"
        assert torch.equal(_bits(hooked.rows[name][1]), _bits(rows)), f"{what}: {name}"
    assert hooked.meta == scanned.meta and hooked.counters == scanned.counters, what


@dataclass(frozen=True)
class Pulled:
    rows: set[str]  # tensors sent as rows
    whole: set[str]  # tensors sent whole
    nbytes: int


def _exchange(algo: Any, width: int, sparse: bool, workers: int = 3) -> list[Pulled]:
    """Workers train 1 to 3 batches (now and then 12) in a random order and push; returns
    what each pull carried, each pull checked against the server's whole shared state."""
    rules = algo.distribution.delta_rules
    g = torch.Generator().manual_seed(7)
    first, _ = warm_up(algo, None, iter([_batch(g, 200, width, sparse)]), torch.device("cpu"), "t")
    server = ParameterServer(rules, workers)
    server.replace(_wire(first), [0] * workers)
    states = [_wire(first) for _ in range(workers)]
    replicas = [Replica(s, rules, algo.distribution.touched_tensors) for s in states]
    pushes = [0] * workers
    pulls: list[Pulled] = []
    for step in range(60):
        i = int(torch.randint(workers, (1,), generator=g))
        if step == 30:  # an epoch barrier: the server's state replaced, workers begin again
            server.replace(_wire(server.state), [0] * workers)
            assert server.state is not None
            states = [_wire(server.state) for _ in range(workers)]
            replicas = [Replica(s, rules, algo.distribution.touched_tensors) for s in states]
        many = step % 11 == 5
        for _ in range(12 if many else 1 + step % 3):
            batch = _batch(g, 50, width, sparse)
            fold(algo, states[i], batch)
            replicas[i].touch(algo.touched_rows(batch))
        # Sparse batches: the hook's rows, not the whole tables, are compared.
        assert replicas[i].anywhere is not sparse
        latest = pushes[i] % LATEST_EVERY == 0
        hooked = replicas[i].delta(states[i], latest=latest)
        scanned = state_delta(replicas[i].pulled, states[i], rules, latest=latest)
        _assert_same_delta(hooked, scanned, f"delta {step}, worker {i}")
        delta = _wire(hooked)
        since = replicas[i].since
        pull: Pull = _wire(server.push(i, delta, step, since))
        pulls.append(Pulled(set(pull.rows), set(pull.view.tensors), pull.nbytes))
        states[i] = replicas[i].receive(states[i], pull, latest=latest)
        pushes[i] += 1
        assert server.state is not None
        _assert_same(states[i], server.state, rules, f"push {step}, worker {i}")
        # The state the next delta is taken against is the server's too.
        _assert_same(replicas[i].pulled, server.state, rules, f"pulled {step}, worker {i}")
        if since is None:
            assert not pulls[-1].rows, "a first pull is a full one"
    return pulls


def test_sparse_pulls_give_factorization_machines_the_servers_state() -> None:
    hp = {
        "feature_dim": WIDTH,
        "num_factors": 4,
        "predictor_type": "binary_classifier",
        "mini_batch_size": 50,
        "averaging_batches": 20,
    }
    algo = get_algorithm("factorization-machines")(**hp)
    pulls = _exchange(algo, WIDTH, sparse=True)
    sparse = [p for p in pulls if "table" in p.rows]
    assert len(sparse) > len(pulls) // 2, "most pulls should carry rows, not the table"
    assert {"touches", "at"} <= {name for p in sparse for name in p.rows}
    # The dense pushes (12 batches: more than half the rows) make the next pulls dense too.
    assert any("table" in p.whole for p in pulls[1:])
    full = max(p.nbytes for p in pulls)
    assert sum(p.nbytes for p in sparse) / len(sparse) < full / 4


def test_sparse_pulls_give_linear_learner_the_servers_state() -> None:
    # Dense rows change every weight row (pulls go whole); the held-out reservoir
    # (``latest``) stays each worker's own and sometimes travels, sometimes not.
    hp = {"predictor_type": "binary_classifier", "num_models": 4, "mini_batch_size": 50}
    algo = get_algorithm("linear-learner")(**hp)
    pulls = _exchange(algo, 6, sparse=False)
    assert all(not p.rows for p in pulls)


def test_a_pull_from_before_the_last_replace_is_a_full_one() -> None:
    algo = get_algorithm("factorization-machines")(
        feature_dim=64, num_factors=2, predictor_type="binary_classifier"
    )
    state = algo.init_state(64)
    server = ParameterServer(algo.distribution.delta_rules, 1)
    server.replace(state.clone(), [0])
    replica = Replica(state, algo.distribution.delta_rules)
    empty = replica.delta(state, latest=True)
    since = server.push(0, empty, 0, None).version
    assert server.push(0, empty, 0, since).rows["table"][0].numel() == 0  # nothing changed
    server.replace(state.clone(), [0])
    assert not server.push(0, empty, 0, since).rows  # its rows may all differ now


def test_sparse_pulls_give_sparse_linear_learner_the_servers_state() -> None:
    # Sparse rows: a lazy step of the touched rows, decay and L1 included (4 candidates:
    # with and without each), so pushes look for changes only among them.
    hp = {"predictor_type": "binary_classifier", "num_models": 4, "mini_batch_size": 50}
    algo = get_algorithm("linear-learner")(**hp)
    pulls = _exchange(algo, WIDTH, sparse=True)
    assert {"weight", "weight.m", "weight.v"} <= {name for p in pulls for name in p.rows}


def _uncovered(algo: Any, state: State, batch: Batch) -> dict[str, int]:
    """Train ``state`` on ``batch``: how many rows of each of ``touched_tensors`` changed,
    bit for bit, that ``touched_rows`` did not name."""
    before = state.clone()
    fold(algo, state, batch)
    claimed = algo.touched_rows(batch)
    found: dict[str, int] = {}
    for name in algo.distribution.touched_tensors & state.tensors.keys():
        new, old = state.tensors[name], before.tensors[name]
        n = new.shape[0]
        changed = (_bits(new).view(n, -1) != _bits(old).view(n, -1)).any(1)
        if claimed is None:  # any row: nothing is left out
            changed.zero_()
        else:
            changed[claimed] = False
        found[name] = int(changed.sum())
    return found


FM_CASES = [
    {"optimizer": "adam", "averaging_batches": 20},
    {"optimizer": "sgd", "factors_wd": 0.01, "linear_wd": 0.01},
    {"optimizer": "adam", "averaging_batches": 5, "factors_wd": 0.01, "clip_gradient": 0.1},
]


def test_touched_rows_cover_every_row_an_update_changes() -> None:
    """The hook against the scan on real updates: a row an update changes but the hook
    leaves out would be missing from a push, silently."""
    g = torch.Generator().manual_seed(3)
    width = 256
    for extra in FM_CASES:
        fm = get_algorithm("factorization-machines")(
            feature_dim=width, num_factors=3, predictor_type="binary_classifier", **extra
        )
        state = fm.init_state(width)
        names = fm.distribution.touched_tensors & state.tensors.keys()
        assert names >= {"table", "touches"}
        for i in range(6):
            sparse = i % 3 != 2
            batch = _batch(g, 20, width, sparse)
            if not sparse:  # some columns unused: the dense path's lazy rows
                batch = Batch(batch.dense_features() * (torch.arange(width) % 3 == 0), batch.labels)
            assert not any(_uncovered(fm, state, batch).values()), (extra, i)
    for optimizer in ("adam", "sgd", "rmsprop"):
        ll = get_algorithm("linear-learner")(
            predictor_type="binary_classifier", num_models=4, optimizer=optimizer
        )
        state, _ = warm_up(ll, None, iter([_batch(g, 20, width, True)]), torch.device("cpu"), "t")
        assert ll.distribution.touched_tensors & state.tensors.keys() >= {"weight"}
        for i in range(4):
            uncovered = _uncovered(ll, state, _batch(g, 20, width, sparse=i != 3))
            assert not any(uncovered.values()), (optimizer, i)


def test_a_hook_that_leaves_out_a_changed_row_is_caught() -> None:
    fm = get_algorithm("factorization-machines")(
        feature_dim=64, num_factors=2, predictor_type="binary_classifier"
    )
    truthful = fm.touched_rows

    def short(batch: Batch) -> torch.Tensor | None:
        rows = truthful(batch)
        assert rows is not None
        return rows[rows != rows[0]]

    fm.touched_rows = short  # type: ignore[method-assign]
    state = fm.init_state(64)
    g = torch.Generator().manual_seed(5)
    assert sum(_uncovered(fm, state, _batch(g, 20, 64, sparse=True)).values()) > 0
