"""The optimiser steps of a packed state: the table's rows (every candidate's ``[v | w]`` with
its own learning rate and decay per column) and the candidates' biases."""

from __future__ import annotations

import torch

from streamfit.algorithms.factorization_machines.hyperparameters import (
    FactorizationMachinesHyperparameters,
)
from streamfit.algorithms.factorization_machines.table import per_column
from streamfit.algorithms.linear_learner.optim import (
    OptimConfig,
    gather_rows,
    moment_names,
    packed_step,
    scatter_rows,
    step,
)
from streamfit.core.state import State

__all__ = ["bias_step", "optim_config", "table_step"]


def optim_config(hp: FactorizationMachinesHyperparameters) -> OptimConfig:
    return OptimConfig(hp.optimizer, hp.beta_1, hp.beta_2, hp.momentum, hp.eps)


def _clip(hp: FactorizationMachinesHyperparameters, grad: torch.Tensor) -> torch.Tensor:
    c = hp.clip_gradient
    return grad if c is None else grad.clamp_(-c, c)


def bias_step(hp: FactorizationMachinesHyperparameters, state: State, grad: torch.Tensor) -> None:
    """The candidates' biases' step (``w0`` and its moments are tensors of their own)."""
    t = state.tensors
    device = grad.device
    step(
        optim_config(hp),
        t["w0"],
        _clip(hp, grad),
        {m: t[f"w0.{m}"] for m in moment_names(hp.optimizer)},
        torch.tensor(hp.bias_lr, device=device),
        state.meta["step"],
        wd=torch.tensor(hp.bias_wd, device=device) if hp.bias_wd > 0 else None,
    )
    if hp.averaging_batches:
        t["w0.avg"].lerp_(t["w0"], 1.0 / hp.averaging_batches)


def table_step(
    hp: FactorizationMachinesHyperparameters,
    state: State,
    grad: torch.Tensor,
    rows: torch.Tensor | None,
    gathered: torch.Tensor | None,
) -> None:
    """The step of every candidate's ``[v | w]`` for ``rows`` (all when None; ``gathered``:
    their rows of the table if the caller has them), learning rate and decay per column: the
    candidate's ``factors_*`` for ``v``, ``linear_*`` for ``w``. With averaging, each row's
    average first catches up (since its last step the row held its parameters unchanged),
    then moves one step."""
    t = state.tensors
    k = hp.num_factors
    lr = per_column(t["factors_lr"], t["linear_lr"], k)
    wd: torch.Tensor | None = None
    if bool((t["factors_wd"] > 0).any() or (t["linear_wd"] > 0).any()):
        wd = per_column(t["factors_wd"], t["linear_wd"], k)
    table, cfg = t["table"], optim_config(hp)
    now = state.meta["step"]
    if not hp.averaging_batches:
        packed_step(cfg, table, _clip(hp, grad), lr, now, rows, wd, gathered)
        return
    if rows is None:
        sel = table
    elif gathered is not None:
        sel = gathered
    else:
        sel = gather_rows(table, rows)
    at = t["at"]
    beta = 1.0 - 1.0 / hp.averaging_batches
    idle = (now - 1 - (at if rows is None else at.index_select(0, rows))).to(sel.dtype)
    sel[:, -1].lerp_(sel[:, 0], (1 - beta**idle).unsqueeze(1))
    packed_step(cfg, sel[:, :-1], _clip(hp, grad), lr, now, None, wd)
    sel[:, -1].lerp_(sel[:, 0], 1.0 - beta)
    if rows is None:
        at.fill_(now)
    else:
        at.index_fill_(0, rows, now)
        scatter_rows(table, rows, sel)
