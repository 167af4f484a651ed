"""Neural networks in a state: an ``nn.Module``, its ``torch.optim`` optimiser and LR scheduler
kept in a :class:`~streamfit.core.state.State` (safetensors + JSON, never pickle), with
randomness drawn per step from the state, never from torch's global generator.

Under a prefix ``p`` (default ``"net"``) the state holds:

==============================  ===========================================================
``tensors["p.module.NAME"]``    the module's parameters and buffers (batch-norm statistics)
``tensors["p.optim.NAME.KEY"]`` the optimiser's per-parameter tensors, by parameter name
                                (``exp_avg``, ``momentum_buffer``, Adam's ``step``, ...)
``meta["p"]``                   the optimiser's class, param groups (learning rates, betas,
                                ...) and per-parameter numbers; the scheduler's class and
                                state; ``seed`` and ``steps``: where the step seeds come from
==============================  ===========================================================

Training a state, saving it (``State.save``/``State.load``), restoring and continuing is bit
for bit the same on the CPU as never stopping: every number the next step reads is in the state
(the dropout mask of step ``t`` comes from a seed made of the state's ``seed`` and ``t``).

>>> from streamfit.core.state import State
>>> def build(device: torch.device) -> Net:
...     module = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5),
...                                  torch.nn.Linear(8, 1)).to(device)
...     return Net(module, torch.optim.Adam(module.parameters(), lr=0.01))
>>> nets = NetKeeper(build)
>>> state = State("demo", {}, 3)
>>> nets.create(state, seed=7)
>>> x, y = torch.ones(4, 3), torch.zeros(4, 1)
>>> def train(state: State) -> float:
...     with nets.step(state) as net:
...         loss = ((net.module(x) - y) ** 2).mean()
...         loss.backward()
...         net.optimizer.step()
...     return loss.item()
>>> _ = train(state); copy = state.clone()  # a resumed state: the keeper rebuilds its network
>>> train(state) == train(copy)
True
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, MultiplicativeLR

from streamfit.core.state import State
from streamfit.errors import ConfigError, IncompatibleStateError

__all__ = [
    "Net",
    "NetKeeper",
    "load_net",
    "merge_nets",
    "net_bytes",
    "save_net",
    "seeded",
    "step_seed",
]

_MASK = (1 << 64) - 1
#: The counter that seeds a network's initial weights: no training step ever reaches it.
_INIT_STEP = _MASK


@dataclass
class Net:
    """A network and what trains it; built by an algorithm, kept by a :class:`NetKeeper`."""

    module: nn.Module
    optimizer: Optimizer
    scheduler: LRScheduler | None = None


#: Builds an algorithm's network (on a device) with fresh weights; the state's values are then
#: loaded into it, so its initial values only matter for a new state.
NetBuilder = Callable[[torch.device], Net]


# -- randomness -------------------------------------------------------------------------------


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def step_seed(seed: int, step: int) -> int:
    """The seed of training step ``step`` of a state seeded ``seed``: a hash of both, so that
    step ``t`` draws the same numbers however the run got there (counter-based seeding).

    >>> step_seed(0, 1) == step_seed(0, 1), step_seed(0, 1) == step_seed(0, 2)
    (True, False)
    """
    return _splitmix64(_splitmix64(seed & _MASK) ^ (step & _MASK)) >> 1  # torch takes 63 bits


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Within the block, torch's global generators (the CPU's, and ``device``'s if it is a
    CUDA device) are seeded with ``seed``; after it they are what they were, so code outside
    draws as if the block never ran. Dropout and ``torch.randn`` without a generator draw
    from these.

    >>> with seeded(3):
    ...     a = torch.rand(2)
    >>> with seeded(3):
    ...     b = torch.rand(2)
    >>> torch.equal(a, b)
    True
    """
    dev = torch.device(device)
    devices = []
    if dev.type == "cuda":
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        for index in devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)  # this device alone: others stay untouched
        yield


# -- saving and loading -----------------------------------------------------------------------


def _param_names(net: Net) -> list[str]:
    """The name of each parameter the optimiser holds, in its state dict's order."""
    names = {id(p): name for name, p in net.module.named_parameters()}
    out = []
    for group in net.optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in names:
                raise ConfigError("the optimiser holds a parameter that is not the module's")
            out.append(names[id(p)])
    return out


def _json(value: Any, where: str) -> Any:
    """``value`` as JSON (tuples become lists), or a :class:`ConfigError` naming ``where``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, list | tuple):
        return [_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json(v, f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(
        f"{where} is a {type(value).__name__}, which a state cannot hold without pickle "
        "(only numbers, strings, lists and dicts)"
    )


def _check_scheduler(scheduler: LRScheduler | None) -> None:
    if isinstance(scheduler, LambdaLR | MultiplicativeLR):
        raise ConfigError(
            f"{type(scheduler).__name__} schedules by a Python function, which a state cannot "
            "hold without pickle: use a scheduler of numbers (StepLR, ExponentialLR, "
            "CosineAnnealingLR, ...)"
        )


def save_net(state: State, net: Net, prefix: str = "net") -> None:
    """Put ``net`` into ``state`` under ``prefix``, replacing what was there.

    The state's tensors are the network's own (no copy): training the network trains the
    state. ``seed`` and ``steps`` already under ``prefix`` are kept (0 if none).
    """
    _check_scheduler(net.scheduler)
    tensors = {f"{prefix}.module.{k}": t for k, t in net.module.state_dict().items()}
    names = _param_names(net)
    packed = net.optimizer.state_dict()
    numbers: dict[str, dict[str, Any]] = {}
    for index, values in packed["state"].items():
        pname = names[index]
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.optim.{pname}.{key}"] = value
            else:
                where = f"optimizer state {pname}.{key}"
                numbers.setdefault(pname, {})[key] = _json(value, where)
    groups = []
    for i, group in enumerate(packed["param_groups"]):
        entry = {k: _json(v, f"optimizer param group {i}, {k}") for k, v in group.items()}
        entry["params"] = [names[p] for p in group["params"]]
        groups.append(entry)
    old = state.meta.get(prefix) or {}
    scheduler = None
    if net.scheduler is not None:
        sched_state = _json(net.scheduler.state_dict(), "scheduler state")
        scheduler = {"class": type(net.scheduler).__name__, "state": sched_state}
    # Only now that nothing can fail: a refused network leaves the state as it was.
    mine = f"{prefix}."
    for name in [k for k in state.tensors if k.startswith(mine)]:
        del state.tensors[name]
    state.tensors.update(tensors)
    state.meta[prefix] = {
        "seed": int(old.get("seed", 0)),
        "steps": int(old.get("steps", 0)),
        "optimizer": {
            "class": type(net.optimizer).__name__,
            "param_groups": groups,
            "numbers": numbers,
        },
        "scheduler": scheduler,
    }


def _as_tuples(saved: Any, live: Any) -> Any:
    """``saved`` (from JSON) with lists made tuples where the live value is a tuple."""
    if isinstance(live, tuple) and isinstance(saved, list):
        return tuple(_as_tuples(s, v) for s, v in zip(saved, live, strict=False))
    if isinstance(live, dict) and isinstance(saved, dict):
        return {k: _as_tuples(v, live.get(k)) for k, v in saved.items()}
    return saved


def load_net(state: State, net: Net, prefix: str = "net") -> None:
    """Load what :func:`save_net` put in ``state`` into ``net`` (built with the same shapes,
    optimiser and scheduler classes); a state of another shape is :class:`IncompatibleStateError`.
    """
    meta = state.meta.get(prefix)
    if not isinstance(meta, dict):
        raise IncompatibleStateError(f"the state holds no network under {prefix!r}")
    optim = meta["optimizer"]
    for what, saved, live in (
        ("optimiser", optim["class"], type(net.optimizer).__name__),
        ("scheduler", (meta["scheduler"] or {}).get("class"), _class_name(net.scheduler)),
    ):
        if saved != live:
            raise IncompatibleStateError(f"the state's {what} is {saved}, the network's {live}")
    head = f"{prefix}.module."
    module_state = {k[len(head) :]: v for k, v in state.tensors.items() if k.startswith(head)}
    try:
        net.module.load_state_dict(module_state, strict=True)
    except RuntimeError as exc:
        raise IncompatibleStateError(f"the state's network does not fit this one: {exc}") from exc
    names = _param_names(net)
    index = {name: i for i, name in enumerate(names)}
    per_param: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.optim."
    for key, t in state.tensors.items():
        if key.startswith(head):
            pname, _, slot = key[len(head) :].rpartition(".")
            if pname not in index:
                raise IncompatibleStateError(f"the state's optimiser has a parameter {pname!r}")
            per_param.setdefault(index[pname], {})[slot] = t
    for pname, values in optim["numbers"].items():
        per_param.setdefault(index[pname], {}).update(values)
    live_groups = net.optimizer.state_dict()["param_groups"]
    if len(live_groups) != len(optim["param_groups"]):
        raise IncompatibleStateError("the state's optimiser has other parameter groups")
    groups = []
    for saved, live in zip(optim["param_groups"], live_groups, strict=True):
        group = _as_tuples(dict(saved), live)
        group["params"] = [index[p] for p in saved["params"]]
        groups.append(group)
    net.optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    if net.scheduler is not None:
        net.scheduler.load_state_dict(copy.deepcopy(meta["scheduler"]["state"]))


def _class_name(obj: object | None) -> str | None:
    return None if obj is None else type(obj).__name__


# -- a network kept in a state across steps ---------------------------------------------------


class NetKeeper:
    """An algorithm's network for whichever state it trains: built and loaded from the state
    when the state is new to it (a resumed, cloned or merged state), reused while the state's
    entries are still the ones it last wrote, so that a step costs no copy.

    ``build`` makes the network with fresh weights; its initial weights are drawn under the
    state's seed by :meth:`create`.
    """

    def __init__(self, build: NetBuilder, prefix: str = "net") -> None:
        self.build = build
        self.prefix = prefix
        self._net: Net | None = None
        self._written: dict[str, torch.Tensor] = {}
        self._meta: Any = None

    def create(self, state: State, seed: int, device: torch.device | str = "cpu") -> None:
        """Put a new network into ``state``, its weights drawn from ``seed`` (and its dropout
        masks from ``seed`` and the step counter)."""
        with seeded(step_seed(seed, _INIT_STEP), device):
            net = self.build(torch.device(device))
        state.meta[self.prefix] = {"seed": seed & _MASK, "steps": 0}
        save_net(state, net, self.prefix)
        self._remember(state, net)

    def get(self, state: State) -> Net:
        """The network that ``state`` holds, in training mode."""
        net = self._net
        if net is None or not self._current(state):
            with seeded(0, state.device):  # its initial weights are replaced: draw nothing
                net = self.build(state.device)
            load_net(state, net, self.prefix)
            save_net(state, net, self.prefix)  # the state now holds the network's own tensors
            self._remember(state, net)
        return net

    @contextmanager
    def step(self, state: State) -> Iterator[Net]:
        """One training step on ``state``'s network: gradients cleared, the step's seed set
        for dropout and sampling; the step counter advances and the state takes the
        optimiser's new entries when the block ends without an error."""
        net = self.get(state)
        net.module.train()
        net.optimizer.zero_grad(set_to_none=True)
        meta = state.meta[self.prefix]
        with seeded(step_seed(int(meta["seed"]), int(meta["steps"])), state.device):
            yield net
        net.optimizer.zero_grad(set_to_none=True)  # gradients are not state: free them
        meta["steps"] = int(meta["steps"]) + 1
        save_net(state, net, self.prefix)
        self._remember(state, net)

    def steps(self, state: State) -> int:
        return int(state.meta[self.prefix]["steps"])

    def _remember(self, state: State, net: Net) -> None:
        self._net = net
        head = f"{self.prefix}."
        self._written = {k: v for k, v in state.tensors.items() if k.startswith(head)}
        self._meta = copy.deepcopy(state.meta[self.prefix])

    def _current(self, state: State) -> bool:
        """Whether ``state`` still holds exactly what this keeper last wrote."""
        head = f"{self.prefix}."
        names = [k for k in state.tensors if k.startswith(head)]
        if len(names) != len(self._written):
            return False
        if any(state.tensors[k] is not self._written.get(k) for k in names):
            return False
        return bool(state.meta.get(self.prefix) == self._meta)


# -- merging and sizes ------------------------------------------------------------------------


def merge_nets(a: State, b: State, into: State, prefix: str = "net") -> None:
    """Write into ``into`` the network of ``a`` and ``b`` averaged, weighted by their steps.

    Parameters, buffers and every floating optimiser tensor (moments, Adagrad's sums) are
    weighted means. Adam's ``step`` is one of those too: the bias correction ``1 - beta**t``
    of averaged moments is the weighted mean of each state's, which ``1 - beta**mean(t)``
    matches exactly for equal steps and closely otherwise (the function is concave in ``t``),
    while the max would over-correct the state with fewer steps. Batch-norm's
    ``num_batches_tracked`` and the step counter add up (the merged state summarises both);
    learning rates and the scheduler's position come from the state with more steps (``a``
    on a tie); ``seed`` from ``a``.
    """
    ma, mb = a.meta.get(prefix), b.meta.get(prefix)
    if not isinstance(ma, dict) or not isinstance(mb, dict):
        raise IncompatibleStateError(f"merge: a state holds no network under {prefix!r}")
    for key in ("optimizer", "scheduler"):
        ca, cb = (ma[key] or {}).get("class"), (mb[key] or {}).get("class")
        if ca != cb:
            raise IncompatibleStateError(f"merge: one state's {key} is {ca}, the other's {cb}")
    sa, sb = int(ma["steps"]), int(mb["steps"])
    wa = 0.5 if sa + sb == 0 else sa / (sa + sb)
    head = f"{prefix}."
    names_a = {k for k in a.tensors if k.startswith(head)}
    names_b = {k for k in b.tensors if k.startswith(head)}
    if {k for k in names_a if ".module." in k} != {k for k in names_b if ".module." in k}:
        raise IncompatibleStateError("merge: the two states' networks differ in shape")
    merged: dict[str, torch.Tensor] = {}
    for name in sorted(names_a | names_b):
        ta, tb = a.tensors.get(name), b.tensors.get(name)
        if ta is None or tb is None:  # an optimiser that has not stepped has no moments yet
            merged[name] = (ta if ta is not None else tb).clone()  # type: ignore[union-attr]
            continue
        tb = tb.to(ta.device)
        if ta.shape != tb.shape:
            raise IncompatibleStateError(f"merge: {name} has shapes {ta.shape} and {tb.shape}")
        if ta.is_floating_point():
            merged[name] = ta * wa + tb * (1 - wa)
        elif name.endswith("num_batches_tracked"):
            merged[name] = ta + tb
        elif torch.equal(ta, tb):
            merged[name] = ta.clone()
        else:
            raise IncompatibleStateError(f"merge: {name} differs and is not a number to average")
    for name in [k for k in into.tensors if k.startswith(head)]:
        del into.tensors[name]
    into.tensors.update(merged)
    lead = ma if sa >= sb else mb
    into.meta[prefix] = {
        **copy.deepcopy(lead),
        "seed": int(ma["seed"]),
        "steps": sa + sb,
    }


#: Tensors each optimiser keeps per parameter, in units of the parameter's size.
_SLOTS = {"SGD": 1, "Adam": 2, "AdamW": 2, "Adagrad": 1, "RMSprop": 3, "Adadelta": 2}


def net_bytes(build: NetBuilder) -> int:
    """About the bytes the network ``build`` makes takes in a state once trained: module
    parameters and buffers, plus the optimiser's moments (allocated at its first step; an
    unknown optimiser counts two per parameter, as Adam). Built on the ``meta`` device: nothing
    is allocated, no random number drawn.

    >>> net_bytes(lambda d: Net(m := torch.nn.Linear(9, 1), torch.optim.SGD(m.parameters())))
    80
    """
    with torch.device("meta"):
        net = build(torch.device("meta"))
    params = sum(p.numel() * p.element_size() for p in net.module.parameters())
    buffers = sum(b.numel() * b.element_size() for b in net.module.buffers())
    return params * (1 + _SLOTS.get(type(net.optimizer).__name__, 2)) + buffers
