"""The packed state: every candidate's ``[v_i | w_i]`` side by side in each feature's row of
one table, with their optimiser moments (and averages) as further slots of the same row.

``table`` is ``(features, slots, M * (k + 1))``: slot 0 the parameters, then the optimiser's
moments (:func:`~streamfit.algorithms.linear_learner.optim.moment_names`), then, with
``averaging_batches``, each row's moving average. Candidate ``c``'s block is columns
``c * (k + 1)`` to ``(c + 1) * (k + 1)``: ``k`` factors, then the linear weight.
"""

from __future__ import annotations

import math

import torch

from streamfit.algorithms.factorization_machines.choice import merge_held_out_scores, new_reservoir
from streamfit.algorithms.factorization_machines.grid import candidate_grid
from streamfit.algorithms.factorization_machines.hyperparameters import (
    FactorizationMachinesHyperparameters,
)
from streamfit.algorithms.linear_learner.optim import gather_rows, moment_names
from streamfit.core.state import State

__all__ = [
    "SETTINGS",
    "final_rows",
    "initial_tensors",
    "merge_states",
    "per_column",
    "slots",
    "upgrade",
]

#: Each candidate's settings, ``(M,)`` tensors in the state (what trained it).
SETTINGS = ("linear_lr", "factors_lr", "linear_wd", "factors_wd", "factors_init_sigma")


def slots(hp: FactorizationMachinesHyperparameters) -> int:
    """Slots of a row: the parameters, the optimiser's moments, the average if kept."""
    return 1 + len(moment_names(hp.optimizer)) + (1 if hp.averaging_batches else 0)


def initial_tensors(
    hp: FactorizationMachinesHyperparameters, d: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """The parameters of ``hp.num_models`` candidates drawn from ``generator``, with their
    settings (:func:`~.grid.candidate_grid`), optimiser moments and loss sums. Candidate 0
    draws first, as a single model always has: ``num_models=1`` is the model of old."""
    k, m = hp.num_factors, hp.num_models
    grid = candidate_grid(hp, m)
    table = torch.zeros(d, slots(hp), m * (k + 1))
    blocks = table[:, 0].view(d, m, k + 1)
    w0 = torch.empty(m)
    for c in range(m):
        ratio = grid.factors_init_sigma[c] / hp.factors_init_sigma
        scale = None if hp.factors_init_scale is None else hp.factors_init_scale * ratio
        w0[c] = _init((1,), "bias", hp, generator)[0]
        blocks[:, c, k] = _init((d,), "linear", hp, generator)
        blocks[:, c, :k] = _init(
            (d, k), "factors", hp, generator, grid.factors_init_sigma[c], scale
        )
    t = {"w0": w0, "table": table, "touches": torch.zeros(d, dtype=torch.float64)}
    for name in moment_names(hp.optimizer):
        t[f"w0.{name}"] = torch.zeros(m)
    if hp.averaging_batches:
        table[:, -1] = table[:, 0]
        t["w0.avg"] = w0.clone()
        t["at"] = torch.zeros(d, dtype=torch.int64)
    t["loss_sum"] = torch.zeros(m, dtype=torch.float64)
    return t | {name: torch.tensor(values) for name, values in vars(grid).items()}


def per_column(factors: torch.Tensor, linear: torch.Tensor, k: int) -> torch.Tensor:
    """Candidates' settings laid out as the table's width: ``k`` factor columns then the
    linear one, candidate after candidate.

    >>> per_column(torch.tensor([1.0, 2.0]), torch.tensor([5.0, 6.0]), 2).tolist()
    [1.0, 1.0, 5.0, 2.0, 2.0, 6.0]
    """
    m = factors.numel()
    return torch.cat([factors.view(m, 1).expand(m, k), linear.view(m, 1)], 1).view(-1)


def final_rows(
    state: State, hp: FactorizationMachinesHyperparameters, rows: torch.Tensor | None
) -> torch.Tensor:
    """Every candidate's ``[v | w]`` of ``rows`` (all when None) as a model has them: with
    averaging, each row's average brought up to the last step, as if it were used there
    (a row left alone for ``g`` steps held one value, so its average moved toward it by
    ``beta ** g``)."""
    t = state.tensors
    table = t["table"] if rows is None else gather_rows(t["table"], rows)
    if not hp.averaging_batches:
        return table[:, 0]
    beta = 1.0 - 1.0 / hp.averaging_batches
    at = t["at"] if rows is None else t["at"].index_select(0, rows)
    idle = (int(state.meta["step"]) - at).to(table.dtype)
    return torch.lerp(table[:, 0], table[:, -1], (beta**idle).unsqueeze(1))


def merge_states(a: State, b: State, hp: FactorizationMachinesHyperparameters) -> State:
    """Each feature's parameters and moments averaged, weighted by how many batches of each
    shard used it (rows neither used keep ``a``'s: a feature one worker never saw keeps the
    other's value instead of being halved); the biases by rows seen; half of each held-out
    reservoir."""
    out = a.clone()
    ta, tb = a.tensors, {k: v.to(a.device) for k, v in b.tensors.items()}
    total = ta["touches"] + tb["touches"]
    share = torch.where(total > 0, tb["touches"] / total.clamp_min(1e-300), 0.0).float()
    na, nb = float(a.meta["loss_rows"]), float(b.meta["loss_rows"])
    bias_share = nb / (na + nb) if na + nb > 0 else 0.5
    out.tensors["table"] = ta["table"] + share.view(-1, 1, 1) * (tb["table"] - ta["table"])
    bias_keys = ["w0", *(f"w0.{m}" for m in moment_names(hp.optimizer))]
    for key in bias_keys + (["w0.avg"] if "w0.avg" in ta else []):
        out.tensors[key] = torch.lerp(ta[key], tb[key], bias_share)
    out.tensors["touches"] = total
    out.tensors["loss_sum"] = ta["loss_sum"] + tb["loss_sum"]
    if "at" in ta:  # averages are brought up from the later of the two
        out.tensors["at"] = torch.maximum(ta["at"], tb["at"])
    out.meta["step"] = max(int(a.meta["step"]), int(b.meta["step"]))
    out.meta["loss_rows"] = a.meta["loss_rows"] + b.meta["loss_rows"]
    merge_held_out_scores(out, a, b)
    return out


def upgrade(state: State) -> None:
    """A state written before candidates were packed (one model, its loss in ``meta``, no
    reservoir) in today's layout, in place: one candidate with the settings it was trained
    with. Its table already is one candidate's."""
    t = state.tensors
    if "loss_sum" in t:
        return
    device = t["w0"].device
    hp = FactorizationMachinesHyperparameters(**{**state.hyperparameters, "num_models": 1})
    t["loss_sum"] = torch.tensor([float(state.meta.pop("loss_sum"))], dtype=torch.float64)
    t |= {name: torch.tensor(values) for name, values in vars(candidate_grid(hp, 1)).items()}
    t |= new_reservoir(state, 1)
    state.tensors = {name: value.to(device) for name, value in t.items()}


def _init(
    shape: tuple[int, ...],
    part: str,
    hp: FactorizationMachinesHyperparameters,
    generator: torch.Generator,
    sigma: float | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """``part``'s (bias, linear, factors) initial values; ``sigma`` and ``scale`` replace
    the hyperparameters' (a candidate's own)."""
    method: str = getattr(hp, f"{part}_init_method")
    sigma = getattr(hp, f"{part}_init_sigma") if sigma is None else sigma
    scale = getattr(hp, f"{part}_init_scale") if scale is None else scale
    if method == "constant":
        return torch.full(shape, float(getattr(hp, f"{part}_init_value")))
    if method == "uniform":
        bound = scale if scale is not None else sigma * math.sqrt(3.0)  # sigma's variance
        return (torch.rand(shape, generator=generator) * 2 - 1) * bound
    return torch.randn(shape, generator=generator) * sigma
