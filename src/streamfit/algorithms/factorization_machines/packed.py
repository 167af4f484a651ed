"""Scores and gradients of ``M`` factorization machines packed side by side.

Each feature's row holds ``M`` blocks ``[v_i | w_i]`` of ``k + 1`` numbers, one per candidate,
so one embedding bag (or one matrix product) over the rows a batch uses gives every
candidate's ``s = sum_i v_i x_i`` and linear term at once; the pairwise term is
``1/2 sum_f [s_f^2 - sum_i v_if^2 x_i^2]`` per candidate.

>>> params = torch.tensor([[1.0, 0.0, 0.5, 2.0, 0.0, 0.0], [0.5, 2.0, 0.0, 1.0, 1.0, 0.0]])
>>> x = torch.tensor([[1.0, 1.0]])  # candidate 0: v = (1, 0), (0.5, 2); w = (0.5, 0)
>>> raw, _ = dense_scores(x, params, torch.zeros(2), 2)
>>> raw.tolist()  # 0.5 + <v0, v1> = 0.5 + 0.5; candidate 1: 0 + <(2, 0), (1, 1)> = 2
[[1.0, 2.0]]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["dense_grad", "dense_scores", "loss_and_grad", "sparse_grad", "sparse_scores"]


def _bag(
    indices: torch.Tensor, table: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    return F.embedding_bag(indices, table, offsets, mode="sum", per_sample_weights=weights)


def _squares(params: torch.Tensor, k: int) -> torch.Tensor:
    """``|v_i|^2`` of each row's candidates, (rows, M)."""
    v = params.view(params.shape[0], -1, k + 1)[..., :k]
    return (v * v).sum(-1)


def _combine(
    vw: torch.Tensor, q: torch.Tensor, w0: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    blocks = vw.view(vw.shape[0], -1, k + 1)
    s = blocks[..., :k].contiguous()
    return w0 + blocks[..., k] + 0.5 * ((s * s).sum(-1) - q), s


def sparse_scores(
    indices: torch.Tensor,
    offsets: torch.Tensor,
    values: torch.Tensor,
    params: torch.Tensor,
    w0: torch.Tensor,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw scores ``(n, M)`` and ``s`` ``(n, M, k)`` of CSR rows (``indices`` into the rows
    of ``params``, ``(rows, M * (k + 1))``)."""
    vw = _bag(indices, params, offsets, values)
    q = _bag(indices, _squares(params, k), offsets, values * values)
    return _combine(vw, q, w0, k)


def dense_scores(
    x: torch.Tensor, params: torch.Tensor, w0: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sparse_scores` of dense rows (every row of ``params``)."""
    return _combine(x @ params, (x * x) @ _squares(params, k), w0, k)


def _with_linear(g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Per row, ``[g s | g]`` of each candidate, flattened as the table's width."""
    return torch.cat([g.unsqueeze(-1) * s, g.unsqueeze(-1)], -1).view(g.shape[0], -1)


def _less_own(grad: torch.Tensor, params: torch.Tensor, gq: torch.Tensor, k: int) -> None:
    """``dv_i -= v_i sum_r g_r x_ri^2`` (the square each row's own feature adds to ``s``)."""
    blocks = grad.view(grad.shape[0], -1, k + 1)
    v = params.view(params.shape[0], -1, k + 1)[..., :k]
    blocks[..., :k] -= v * gq.unsqueeze(-1)


def sparse_grad(
    rows: torch.Tensor,
    starts: torch.Tensor,
    values: torch.Tensor,
    params: torch.Tensor,
    g: torch.Tensor,
    s: torch.Tensor,
    k: int,
) -> torch.Tensor:
    """The gradient of ``[v_i | w_i]`` for the batch's columns, ``(columns, M * (k + 1))``,
    as bags over the rows using each column (``rows``, ``values`` in column order, each
    column's bag from ``starts``): ``dw_i = sum_r g_r x_ri``,
    ``dv_i = sum_r g_r x_ri s_r - v_i sum_r g_r x_ri^2``. ``g`` is ``(n, M)``, the loss's
    derivative in each candidate's raw score."""
    grad = _bag(rows, _with_linear(g, s), starts, values)
    _less_own(grad, params, _bag(rows, g, starts, values * values), k)
    return grad


def dense_grad(
    x: torch.Tensor, params: torch.Tensor, g: torch.Tensor, s: torch.Tensor, k: int
) -> torch.Tensor:
    """:func:`sparse_grad` of dense rows, for every column."""
    grad = x.t() @ _with_linear(g, s)
    _less_own(grad, params, (x * x).t() @ g, k)
    return grad


def loss_and_grad(
    kind: str, raw: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row and candidate, the loss and its derivative in the raw score: log loss on
    logits (``binary_classifier``), or half the squared error. ``y`` is ``(n, 1)``."""
    if kind == "binary_classifier":
        return F.softplus(raw) - y * raw, torch.sigmoid(raw) - y
    err = raw - y
    return 0.5 * err * err, err
