"""Deltas: a parameter server with one worker reproduces that worker's training."""

from __future__ import annotations

import torch

from streamfit import Batch, get_algorithm
from streamfit.core.batch import CSR
from streamfit.core.delta import apply_delta, fix_counts, state_delta


def _batches(n: int, sparse: bool = False) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        x = torch.randn(200, 6, generator=g)
        if sparse:
            x = x * (torch.rand(200, 6, generator=g) < 0.1)
        y = (x[:, 0] > 0).float()
        out.append(Batch(CSR.from_dense(x) if sparse else x, y))
    return out


def test_one_workers_deltas_rebuild_its_state() -> None:
    algo = get_algorithm("linear-learner")(predictor_type="binary_classifier", num_models=4)
    server = algo.init_state(6)
    algo.prepare(server, _batches(1))
    algo.for_worker(server)  # as a distributed run's first worker prepares it
    worker = server.clone()
    for i, batch in enumerate(_batches(12)):
        algo.update(worker, batch)
        worker.trainer.add({"rows": batch.n_rows, "batches": 1})
        worker.count("steps", 1)
        if i % 4 == 3:
            apply_delta(
                server,
                state_delta(server, worker, algo.distribution.delta_rules),
                algo.distribution.delta_rules,
                workers=1,
            )
    for name, value in worker.tensors.items():
        torch.testing.assert_close(server.tensors[name], value, msg=name)
    assert server.meta == worker.meta
    assert server.counters == {"steps": 12}
    assert (server.trainer.rows, server.trainer.batches) == (2400, 12)


def test_a_sparse_update_travels_as_the_rows_it_touched() -> None:
    algo = get_algorithm("factorization-machines")(
        feature_dim=1000, num_factors=4, predictor_type="binary_classifier"
    )
    before = algo.init_state(1000)
    after = before.clone()
    x = CSR(torch.tensor([0, 2, 3]), torch.tensor([5, 17, 5]), torch.ones(3), 1000)
    algo.update(after, Batch(x, torch.tensor([1.0, 0.0])))
    delta = state_delta(before, after, algo.distribution.delta_rules)
    rows, _ = delta.rows["table"]
    assert rows.tolist() == [5, 17]
    assert delta.nbytes < before.tensors["table"].numel()  # far less than the table's bytes
    server = before.clone()
    apply_delta(
        server, delta, algo.distribution.delta_rules, workers=2
    )  # two workers: half the way
    half = (before.tensors["table"] + after.tensors["table"]) / 2
    torch.testing.assert_close(server.tensors["table"], half)
    assert server.tensors["touches"][5] == 1  # counts add whole
    assert server.meta["loss_rows"] == 2


def test_fix_counts_counts_the_common_start_once() -> None:
    algo = get_algorithm("linear-learner")(predictor_type="binary_classifier", num_models=4)
    base = algo.init_state(6)
    base.count("steps", 10)
    base.trainer.rows = 1000
    trained = []
    for batch in _batches(2):
        s = base.clone()
        algo.update(s, batch)
        s.count("steps", 1)
        s.trainer.rows += batch.n_rows
        trained.append(s)
    merged = algo.merge(*trained)
    # merge adds the start twice
    assert (merged.counters["steps"], merged.trainer.rows) == (22, 2400)
    fix_counts(merged, base, trained, algo.distribution.delta_rules)
    assert (merged.counters["steps"], merged.trainer.rows) == (12, 1400)
    assert merged.meta["step"] == 2
