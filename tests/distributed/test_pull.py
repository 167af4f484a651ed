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
from streamfit.core.delta import shared_view
from streamfit.distributed.pull import Pull, Replica
from streamfit.distributed.server import ParameterServer
from streamfit.distributed.worker import LATEST_EVERY
from streamfit.training.trainer import fold, warm_up

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


@dataclass(frozen=True)
class Pulled:
    rows: set[str]  # tensors sent as rows
    whole: set[str]  # tensors sent whole
    nbytes: int


def _exchange(algo: Any, width: int, sparse: bool, workers: int = 3) -> list[Pulled]:
    """Workers train 1 to 3 batches (now and then 12) in a random order and push; returns
    what each pull carried, each pull checked against the server's whole shared state."""
    rules = algo.delta_rules
    g = torch.Generator().manual_seed(7)
    first, _ = warm_up(algo, None, iter([_batch(g, 200, width, sparse)]), torch.device("cpu"), "t")
    server = ParameterServer(rules, workers)
    server.replace(_wire(first), [0] * workers)
    states = [_wire(first) for _ in range(workers)]
    replicas = [Replica(s, rules) for s in states]
    pushes = [0] * workers
    pulls: list[Pulled] = []
    for step in range(60):
        i = int(torch.randint(workers, (1,), generator=g))
        if step == 30:  # an epoch barrier: the server's state replaced, workers begin again
            server.replace(_wire(server.state), [0] * workers)
            assert server.state is not None
            states = [_wire(server.state) for _ in range(workers)]
            replicas = [Replica(s, rules) for s in states]
        many = step % 11 == 5
        for _ in range(12 if many else 1 + step % 3):
            fold(algo, states[i], _batch(g, 50, width, sparse))
        latest = pushes[i] % LATEST_EVERY == 0
        delta = _wire(replicas[i].delta(states[i], latest=latest))
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
    server = ParameterServer(algo.delta_rules, 1)
    server.replace(state.clone(), [0])
    replica = Replica(state, algo.delta_rules)
    empty = replica.delta(state, latest=True)
    since = server.push(0, empty, 0, None).version
    assert server.push(0, empty, 0, since).rows["table"][0].numel() == 0  # nothing changed
    server.replace(state.clone(), [0])
    assert not server.push(0, empty, 0, since).rows  # its rows may all differ now
