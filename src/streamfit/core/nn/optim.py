"""What torch's optimisers keep per parameter: allocated with the state, and its size.

Torch's optimisers create their moments at the first step, so a new state would grow then;
:func:`allocate_moments` creates them up front instead, with the values the first step would
have started from, so that a state's memory is fixed when it is made (and ``state_bytes`` is
what ``init_state`` allocates). It takes one step of zero gradients with the learning rate and
weight decay at zero: for the optimisers below that step leaves every moment at zero, and only
the step counters, set back to zero after it, move.
"""

from __future__ import annotations

from typing import Any

import torch

from streamfit.core.nn.store import Net, NetBuilder

__all__ = ["allocate_moments", "net_bytes"]

#: Optimisers whose moments a zero step creates as their first step would.
_EAGER = frozenset({"SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta"})


def _moments(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> int:
    """The tensors of a parameter's size that ``optimizer`` keeps for each in ``group``."""
    name = type(optimizer).__name__
    if name == "SGD":
        return int(group.get("momentum", 0) != 0)
    if name in ("Adam", "AdamW"):
        return 2 + int(bool(group.get("amsgrad")))
    if name == "RMSprop":
        return 1 + int(group.get("momentum", 0) > 0) + int(bool(group.get("centered")))
    if name in ("Adagrad",):
        return 1
    if name == "Adadelta":
        return 2
    return 2  # unknown: Adam's two


def allocate_moments(net: Net) -> None:
    """Create ``net``'s optimiser state now rather than at its first step (optimisers not
    known to start from zeros, and SGD with dampening, are left to create theirs)."""
    optimizer = net.optimizer
    if type(optimizer).__name__ not in _EAGER:
        return
    if any(g.get("dampening", 0) != 0 for g in optimizer.param_groups):
        return  # its first step copies the gradient, not a zero momentum's update of it
    saved: list[dict[str, Any]] = [
        {k: g[k] for k in ("lr", "weight_decay") if k in g} for g in optimizer.param_groups
    ]
    params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
    grads = [p.grad for p in params]
    for g in optimizer.param_groups:
        g["lr"] = 0.0
        if "weight_decay" in g:
            g["weight_decay"] = 0.0
    try:
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer.step()
    finally:
        for g, values in zip(optimizer.param_groups, saved, strict=True):
            g.update(values)
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad
    for values in optimizer.state.values():
        step = values.get("step")
        if isinstance(step, torch.Tensor):
            step.zero_()
        elif step is not None:
            values["step"] = 0


def net_bytes(build: NetBuilder) -> int:
    """The bytes the network ``build`` makes takes in a state: module parameters and
    buffers, the optimiser's moments and step counters. Built on the ``meta`` device: nothing
    is allocated, no random number drawn.

    >>> net_bytes(lambda d: Net(m := torch.nn.Linear(9, 1), torch.optim.Adam(m.parameters())))
    128
    """
    with torch.device("meta"):
        net = build(torch.device("meta"))
    total = sum(b.numel() * b.element_size() for b in net.module.buffers())
    for group in net.optimizer.param_groups:
        moments = _moments(net.optimizer, group)
        for p in group["params"]:
            total += p.numel() * p.element_size() * (1 + moments)
            if type(net.optimizer).__name__ != "SGD":
                total += 4  # a float32 step counter
    return total
