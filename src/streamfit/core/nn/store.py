"""A network, its optimiser and LR scheduler written into a state and read back (tensors by
name, numbers as JSON, never pickle)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, MultiplicativeLR

from streamfit.core.state import State
from streamfit.errors import ConfigError, IncompatibleStateError

__all__ = ["Net", "NetBuilder", "load_net", "save_net"]


@dataclass
class Net:
    """A network and what trains it; built by an algorithm, kept by a :class:`NetKeeper`."""

    module: nn.Module
    optimizer: Optimizer
    scheduler: LRScheduler | None = None


#: Builds an algorithm's network (on a device) with fresh weights; the state's values are then
#: loaded into it, so its initial values only matter for a new state.
NetBuilder = Callable[[torch.device], Net]


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
