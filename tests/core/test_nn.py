"""Networks in a state: saved and restored without pickle so that training continues bit for
bit, randomness from the state alone, and merges weighted by steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamfit.core.batch import Batch
from streamfit.core.nn import (
    Net,
    NetKeeper,
    load_net,
    merge_nets,
    net_bytes,
    save_net,
    seeded,
    step_seed,
)
from streamfit.core.state import State
from streamfit.errors import ConfigError, IncompatibleStateError
from tests.core.tiny_nn import TinyNN

pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(n: int = 640, size: int = 64, seed: int = 0) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = torch.sin(x[:, 0]) + x[:, 1] * x[:, 2]
    return [Batch(x[i : i + size], y[i : i + size]) for i in range(0, n, size)]


def _same(a: State, b: State) -> None:
    assert a.tensors.keys() == b.tensors.keys()
    for name, t in a.tensors.items():
        assert torch.equal(t, b.tensors[name]), name
    assert a.meta == b.meta


CONFIGS = [
    {"optimizer": "sgd", "step_lr": True},
    {"optimizer": "adam", "lr_decay": 0.99, "batch_norm": True},
    {"optimizer": "adamw"},
    {"optimizer": "adagrad", "lr_decay": 0.995},
    {"optimizer": "rmsprop", "batch_norm": True},
    {"optimizer": "adadelta", "step_lr": True},
]


@pytest.mark.parametrize("hp", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_saving_restoring_and_continuing_equals_never_stopping(
    hp: dict[str, object], tmp_path: Path
) -> None:
    algo = TinyNN(hp, dropout=0.3)
    batches = _batches()
    whole = algo.init_state(5)
    for b in batches:
        algo.update(whole, b)
    part = algo.init_state(5)
    for b in batches[:4]:
        algo.update(part, b)
    part.save(tmp_path / "state")
    resumed = State.load(tmp_path / "state")
    fresh = TinyNN(hp, dropout=0.3)  # another process: nothing cached
    for b in batches[4:]:
        fresh.update(resumed, b)
    _same(whole, resumed)
    assert whole.meta["net"]["steps"] == len(batches)
    if hp.get("batch_norm"):
        assert int(whole.tensors["net.module.norm.num_batches_tracked"]) == len(batches)
    if hp.get("step_lr") or hp.get("lr_decay"):  # the schedule moved and was restored
        lrs = {g["lr"] for g in whole.meta["net"]["optimizer"]["param_groups"]}
        assert lrs != {algo.hp.learning_rate * (100 if hp["optimizer"] == "adadelta" else 1)}


def test_training_neither_reads_nor_moves_torchs_global_generator() -> None:
    algo = TinyNN(dropout=0.5)
    batches = _batches(256)
    states = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        expected = torch.rand(3)
        torch.manual_seed(global_seed)
        state = algo.init_state(5)
        for b in batches:
            algo.update(state, b)
        assert torch.equal(torch.rand(3), expected)  # untouched by training
        states.append(state)
    _same(states[0], states[1])  # whatever the global generator held


def test_each_step_draws_its_own_dropout_mask_from_the_state() -> None:
    with seeded(step_seed(9, 0)):
        a = torch.nn.functional.dropout(torch.ones(100), 0.5)
    with seeded(step_seed(9, 0)):
        again = torch.nn.functional.dropout(torch.ones(100), 0.5)
    with seeded(step_seed(9, 1)):
        b = torch.nn.functional.dropout(torch.ones(100), 0.5)
    assert torch.equal(a, again)
    assert not torch.equal(a, b)
    # Two seeds give two networks' initial weights; the same seed the same.
    s1, s2, s3 = (TinyNN(seed=s).init_state(5) for s in (1, 1, 2))
    _same(s1, s2)
    assert not torch.equal(
        s1.tensors["net.module.inner.weight"], s3.tensors["net.module.inner.weight"]
    )


def test_a_keeper_trains_several_states_without_mixing_them() -> None:
    """Alternating between two states (a keeper holds one network at a time) trains each as if
    it were alone, and training one never writes into the other's tensors."""
    algo = TinyNN(dropout=0.2)
    batches = _batches(384)
    alone = algo.init_state(5)
    for b in batches:
        algo.update(alone, b)
    a = algo.init_state(5)
    b_state = algo.init_state(5)
    snapshot = None
    for i, b in enumerate(batches):
        algo.update(a, b)
        if i == 2:
            snapshot = {k: v.clone() for k, v in a.tensors.items()}
            for _ in range(3):
                algo.update(b_state, batches[0])
            assert snapshot is not None
            for k, v in snapshot.items():
                assert torch.equal(a.tensors[k], v), k
    _same(alone, a)


def test_merge_averages_weighted_by_steps_and_sums_the_counts() -> None:
    algo = TinyNN(batch_norm=True, lr_decay=0.9)
    batches = _batches(512)
    a, b = algo.init_state(5), algo.init_state(5)
    for batch in batches[:6]:
        algo.update(a, batch)
    for batch in batches[6:8]:
        algo.update(b, batch)
    out = algo.merge(a, b)
    w = 6 / 8
    for name in ("net.module.inner.weight", "net.optim.inner.weight.exp_avg_sq"):
        assert torch.allclose(out.tensors[name], w * a.tensors[name] + (1 - w) * b.tensors[name])
    # Adam's step: the weighted mean (see merge_nets), not the max.
    assert float(out.tensors["net.optim.inner.weight.step"]) == pytest.approx(6 * w + 2 * (1 - w))
    assert int(out.tensors["net.module.norm.num_batches_tracked"]) == 8
    assert out.meta["net"]["steps"] == 8
    assert out.meta["net"]["scheduler"] == a.meta["net"]["scheduler"]  # a has more steps
    # The merged state trains on (a rebuilt network), and a and b are untouched by it.
    before = a.tensors["net.module.inner.weight"].clone()
    algo.update(out, batches[0])
    assert torch.equal(a.tensors["net.module.inner.weight"], before)


def test_merging_other_networks_or_optimisers_is_refused() -> None:
    a = TinyNN().init_state(5)
    with pytest.raises(IncompatibleStateError, match="optimizer is Adam, the other's SGD"):
        merge_nets(a, TinyNN(optimizer="sgd").init_state(5), a.clone())
    with pytest.raises(IncompatibleStateError, match="differ in shape"):
        merge_nets(a, TinyNN(batch_norm=True).init_state(5), a.clone())
    with pytest.raises(IncompatibleStateError, match="no network"):
        merge_nets(a, State("demo", {}, 5), a.clone())


def _net(scheduler: str | None = None) -> Net:
    module = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(module.parameters())
    sched: torch.optim.lr_scheduler.LRScheduler | None = None
    if scheduler == "lambda":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.9**step)
    elif scheduler == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, 3)
    return Net(module, opt, sched)


def test_what_a_state_cannot_hold_or_fit_is_a_clear_error() -> None:
    state = State("demo", {}, 2)
    with pytest.raises(ConfigError, match="LambdaLR schedules by a Python function"):
        save_net(state, _net("lambda"))
    save_net(state, _net("step"))
    with pytest.raises(IncompatibleStateError, match="scheduler is StepLR, the network's None"):
        load_net(state, _net())
    wide = Net(torch.nn.Linear(3, 1), torch.optim.Adam(torch.nn.Linear(3, 1).parameters()))
    with pytest.raises(ConfigError, match="not the module's"):
        save_net(state, wide)
    other = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(other.parameters())
    with pytest.raises(IncompatibleStateError, match="does not fit"):
        load_net(state, Net(other, opt, torch.optim.lr_scheduler.StepLR(opt, 3)))
    with pytest.raises(IncompatibleStateError, match="no network under 'other'"):
        load_net(state, _net(), prefix="other")
    tensor_lr = _net()
    tensor_lr.optimizer.param_groups[0]["lr"] = torch.tensor(0.1)
    with pytest.raises(ConfigError, match="param group 0, lr is a Tensor"):
        save_net(State("demo", {}, 2), tensor_lr)


def test_a_keeper_rebuilds_for_a_state_changed_behind_its_back() -> None:
    """A state whose entries were replaced (cloned, merged, moved, edited) is loaded afresh
    rather than trained with the keeper's stale network."""

    def build(device: torch.device) -> Net:
        return _net()

    keeper = NetKeeper(build)
    state = State("demo", {}, 2)
    keeper.create(state, seed=1)
    net = keeper.get(state)
    assert keeper.get(state) is net
    state.tensors["net.module.weight"] = torch.zeros(1, 2)
    rebuilt = keeper.get(state)
    assert rebuilt is not net and torch.equal(rebuilt.module.weight.detach(), torch.zeros(1, 2))
    state.meta["net"]["optimizer"]["param_groups"][0]["lr"] = 0.5
    assert keeper.get(state).optimizer.param_groups[0]["lr"] == 0.5


def test_a_keepers_steps_draw_by_the_step_counter() -> None:
    keeper = NetKeeper(lambda device: _net())
    state = State("demo", {}, 2)
    keeper.create(state, seed=3)
    draws = []
    for _ in range(2):
        with keeper.step(state):
            draws.append(torch.rand(4))
    assert not torch.equal(draws[0], draws[1])
    copy = state.clone()
    with keeper.step(state):
        a = torch.rand(4)
    with keeper.step(copy):
        b = torch.rand(4)
    assert torch.equal(a, b)
    assert keeper.steps(state) == keeper.steps(copy) == 3


class _CountingSGD(torch.optim.SGD):
    """SGD that keeps a Python number per parameter: a state must copy it at every step."""

    def step(self, closure=None):  # type: ignore[no-untyped-def]
        out = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["count"] = self.state[p].get("count", 0) + 1
        return out


@pytest.mark.parametrize("kind", ["in place", "a number", "a new tensor"])
def test_a_keepers_state_after_each_step_is_the_networks(kind: str) -> None:
    """A step writes the network into the state again only when it must: moments and weights
    changed in place are the state's own tensors already; a number the optimiser keeps, or a
    moment it replaced, is written anew. Either way the state equals a fresh save."""

    def build(device: torch.device) -> Net:
        module = torch.nn.Linear(2, 1)
        if kind == "a number":
            return Net(module, _CountingSGD(module.parameters(), lr=0.1))
        return Net(module, torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9))

    keeper = NetKeeper(build)
    state = State("demo", {}, 2)
    keeper.create(state, seed=2)
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    for _ in range(3):
        with keeper.step(state) as net:
            torch.nn.functional.mse_loss(net.module(x), y).backward()
            net.optimizer.step()
            if kind == "a new tensor":
                for values in net.optimizer.state.values():
                    values["momentum_buffer"] = values["momentum_buffer"].clone()
    fresh = State("demo", {}, 2)
    fresh.meta["net"] = dict(state.meta["net"])
    save_net(fresh, keeper.get(state))
    assert fresh.meta["net"] == state.meta["net"]
    assert fresh.tensors.keys() == state.tensors.keys()
    for name, tensor in fresh.tensors.items():
        assert torch.equal(tensor, state.tensors[name]), name
    if kind == "a number":
        assert state.meta["net"]["optimizer"]["numbers"]["weight"] == {"count": 3}
    assert keeper.steps(state) == 3


OPTIMISERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True, weight_decay=0.1),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.5),
    "rmsprop": lambda p: torch.optim.RMSprop(p, momentum=0.5, centered=True, weight_decay=0.1),
    "adadelta": lambda p: torch.optim.Adadelta(p, weight_decay=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_moments_made_with_the_state_train_as_those_of_a_first_step(name: str) -> None:
    """A new state holds its optimiser's moments (its memory is fixed when made), and they
    train bit for bit as torch's own, made at the first step; net_bytes is what it holds."""

    def build(device: torch.device) -> Net:
        module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        return Net(module, OPTIMISERS[name](module.parameters()))

    state = State("demo", {}, 3)
    keeper = NetKeeper(build)
    keeper.create(state, seed=5)
    held = sum(t.numel() * t.element_size() for t in state.tensors.values())
    assert held == net_bytes(build)
    with seeded(step_seed(5, 2**64 - 1)):  # the weights create() drew
        lazy = build(torch.device("cpu"))
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        with keeper.step(state) as net:
            net.module(x).pow(2).sum().backward()
            net.optimizer.step()
        lazy.optimizer.zero_grad()
        lazy.module(x).pow(2).sum().backward()
        lazy.optimizer.step()
    reference = State("demo", {}, 3)
    save_net(reference, lazy)
    for key, t in reference.tensors.items():
        assert torch.equal(state.tensors[key], t), key
    assert reference.tensors.keys() == state.tensors.keys()
