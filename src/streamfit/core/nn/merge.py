"""Two states' networks averaged, weighted by their steps."""

from __future__ import annotations

import copy

import torch

from streamfit.core.state import State
from streamfit.errors import IncompatibleStateError

__all__ = ["merge_nets"]


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
