"""Linear Learner's step on a sparse batch as one compiled CPU kernel (numba).

The PyTorch step (:meth:`LinearLearner._update_reference`) costs about twenty tensor
operations a batch, a sort of the batch's columns, and a gather and a scatter of the weights
and of every optimiser buffer: on click-like rows (1,000 rows of 30 columns) the operations'
fixed costs and the scattered rows, not the arithmetic, were its time. This kernel does the
same step in one call, in place on the state's tensors: scaling, every candidate's scores,
the loss and its gradient (:mod:`.kernel_losses`), class weights, the gradient summed per
touched column (found by a table from column to slot instead of a sort), the optimiser's
lazy update of only those rows (L2, decay, L1's prox) and the bias step, on the packed
table of :mod:`.sparse_step`, rows asked for ahead of use (:func:`.jit.prefetch`).

It is a CPU path only; CUDA and dense batches keep the PyTorch step, which stays the
reference: the tests compare the two on random batches over several steps. They differ only
by float32 rounding (sums in another order, Cephes' exp and log for logistic loss).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from streamfit.algorithms.linear_learner.jit import jit, prefetch
from streamfit.algorithms.linear_learner.kernel_losses import LOSS_CODES, SOFTMAX, gradients

__all__ = ["BAD_INDEX", "BAD_LABEL", "LOSS_CODES", "OPTIMIZERS", "score_rows", "sparse_step"]

#: The optimisers of :func:`optim.step`, by the code the kernel branches on.
OPTIMIZERS = {"sgd": 0, "adam": 1, "rmsprop": 2, "adagrad": 3}
#: What the kernel returns when it refused a batch before changing anything.
BAD_LABEL, BAD_INDEX = 1, 2
#: Rows asked for ahead of use (:func:`jit.prefetch`): enough in flight to cover the
#: memory's latency; 8 to 32 measured best (a 2^20-row table, 1 and 32 candidates).
_AHEAD = 16


@jit
def score_rows(
    indptr: Any, indices: Any, values: Any, x_scale: Any, table: Any, bias: Any, out: Any
) -> None:
    """``out = (values / x_scale) @ weight + bias`` for CSR rows, weight as packed."""
    width, k = table.shape[1] * table.shape[2], table.shape[2]
    nnz = indptr[-1]
    for i in range(len(indptr) - 1):
        out[i, :] = 0
        for j in range(indptr[i], indptr[i + 1]):
            if j + _AHEAD < nnz:
                for line in range(0, k, 16):
                    prefetch(table, indices[j + _AHEAD] * width + line)
            r = indices[j]
            xj = values[j] / x_scale[r]
            for c in range(k):
                out[i, c] += xj * table[r, 0, c]
        for c in range(k):
            out[i, c] += bias[c]


@jit
def _check(indptr: Any, indices: Any, labels: Any, d: int, limit: int) -> int:
    """Whether the batch is one the step takes, before anything is changed: its columns
    within the table, its labels classes ``0 .. limit - 1`` (any label where ``limit`` is 0)."""
    for j in range(indptr[-1]):
        if indices[j] < 0 or indices[j] >= d:
            return BAD_INDEX
    if limit == 0:
        return 0
    for i in range(len(labels)):
        y = labels[i]
        if not (y >= 0 and y < limit and y == math.floor(y)):
            return BAD_LABEL
    return 0


@jit
def _scores(
    indptr: Any,
    indices: Any,
    values: Any,
    x_scale: Any,
    uniform: Any,
    table: Any,
    bias: Any,
    slot: Any,
    scores: Any,
    x: Any,
    pos: Any,
    touched: Any,
) -> int:
    """Every candidate's scores before the update (progressive validation reads them), and
    the scaled values ``x`` (divided by ``uniform`` unless it is NaN, else by ``x_scale``).
    The same pass gives each stored value the slot of its column among the batch's
    distinct columns (``pos``; the columns in ``touched``, their number returned), from a
    table from column to slot rather than a sort."""
    one_scale = not math.isnan(uniform)
    width, k = table.shape[1] * table.shape[2], table.shape[2]
    nnz = indptr[-1]
    acc = np.empty(k, np.float32)
    u = 0
    for i in range(len(indptr) - 1):
        acc[:] = 0
        for j in range(indptr[i], indptr[i + 1]):
            if j + _AHEAD < nnz:
                ahead = indices[j + _AHEAD]
                prefetch(slot, ahead)
                if not one_scale:
                    prefetch(x_scale, ahead)
                for line in range(0, k, 16):
                    prefetch(table, ahead * width + line)
            r = indices[j]
            at = slot[r]
            if at < 0:
                at = slot[r] = u
                touched[u] = r
                u += 1
            pos[j] = at
            xj = x[j] = values[j] / (uniform if one_scale else x_scale[r])
            for c in range(k):
                acc[c] += xj * table[r, 0, c]
        for c in range(k):
            scores[i, c] = acc[c] + bias[0, 0, c]
    return u


@jit
def _sum_rows(indptr: Any, pos: Any, x: Any, grad: Any, u: int) -> Any:
    """The gradient of each touched column's row: its stored values' contributions summed
    in their order (the reference's ``index_add_`` order)."""
    k = grad.shape[1]
    g_rows = np.zeros((u, k), np.float32)
    for i in range(len(indptr) - 1):
        for j in range(indptr[i], indptr[i + 1]):
            at = pos[j]
            xj = x[j]
            for c in range(k):
                g_rows[at, c] += grad[i, c] * xj
    return g_rows


@jit
def _update_rows(
    kind: int,
    table: Any,
    rows: Any,
    g_rows: Any,
    wd: Any,
    lr: Any,
    l1: Any,
    prox: bool,
    constants: Any,
    bc1: Any,
    bc2: Any,
) -> None:
    """Rows ``rows`` of ``table`` (weights, then buffers) take the gradients ``g_rows`` (row
    ``s`` for ``rows[s]``), as :func:`optim.step` does: L2, an optimiser step, then L1's
    proximal step where ``prox``. One loop per optimiser, so that each vectorises."""
    width, k = table.shape[1] * table.shape[2], table.shape[2]
    beta_1, beta_2, momentum, eps = constants[0], constants[1], constants[2], constants[3]
    one, zero = np.float32(1.0), np.float32(0.0)
    rate = np.empty(k, np.float32)  # the step's scale of m / denom (Adam's bias correction)
    for c in range(k):
        rate[c] = lr[c] / bc1 if kind == 1 else lr[c]
    decay, fresh = (beta_2, one - beta_2) if kind == 2 else (one, one)  # rmsprop, adagrad
    g = np.empty(k, np.float32)
    denom = np.ones(k, np.float32)
    n = len(rows)
    for s in range(n):
        if s + _AHEAD < n:
            for line in range(0, width, 16):
                prefetch(table, rows[s + _AHEAD] * width + line)
        r = rows[s]
        for c in range(k):
            g[c] = g_rows[s, c] + table[r, 0, c] * wd[c]
        if kind == 1:  # adam
            for c in range(k):
                m = table[r, 1, c] * beta_1 + (one - beta_1) * g[c]
                v = table[r, 2, c] * beta_2 + (one - beta_2) * g[c] * g[c]
                table[r, 1, c] = m
                table[r, 2, c] = v
                denom[c] = np.sqrt(v / bc2) + eps
                table[r, 0, c] -= m / denom[c] * rate[c]
        elif kind == 0:  # sgd with momentum
            for c in range(k):
                mom = table[r, 1, c] * momentum + g[c]
                table[r, 1, c] = mom
                table[r, 0, c] -= mom * rate[c]
        else:
            for c in range(k):
                v = table[r, 1, c] * decay + fresh * g[c] * g[c]
                table[r, 1, c] = v
                denom[c] = np.sqrt(v) + eps
                table[r, 0, c] -= g[c] / denom[c] * rate[c]
        if prox:
            for c in range(k):
                p = table[r, 0, c]
                a = max(abs(p) - lr[c] * l1[c] / denom[c], zero)
                table[r, 0, c] = a if p > 0 else (-a if p < 0 else zero * p)


@jit
def sparse_step(
    indptr: Any,
    indices: Any,
    values: Any,
    labels: Any,
    x_scale: Any,
    uniform: Any,
    class_weight: Any,
    y_shift: Any,
    y_scale: Any,
    table: Any,
    bias: Any,
    lr_m: Any,
    wd_m: Any,
    l1_m: Any,
    decay: Any,
    floor: Any,
    kind: int,
    constants: Any,
    bc1: Any,
    bc2: Any,
    code: int,
    params: Any,
    classes: int,
    regressor: bool,
    use_bias: bool,
    slot: Any,
    scores: Any,
    per_model: Any,
    epoch_loss: Any,
) -> int:
    """The whole step in place (see the module doc); 0, or why the batch was refused.
    ``table`` is the packed weights ``(d, 1 + buffers, k)``, ``bias`` the packed bias
    ``(1, 1 + buffers, k)``; ``lr_m``, ``wd_m``, ``l1_m`` are per candidate."""
    d, k = table.shape[0], table.shape[2]
    n = len(indptr) - 1
    limit = 0 if regressor else (classes if code == SOFTMAX else 2)
    status = _check(indptr, indices, labels, d, limit)
    if status != 0:
        return status
    # Each column's settings: its candidate's, the learning rate as the scheduler left it.
    bias_lr_mult, bias_wd_mult = constants[4], constants[5]
    lr, wd, l1 = np.empty(k, np.float32), np.empty(k, np.float32), np.empty(k, np.float32)
    bias_lr, bias_wd = np.empty(k, np.float32), np.empty(k, np.float32)
    prox = False
    for c in range(k):
        m = c // classes
        lr[c] = max(lr_m[m] * decay, min(lr_m[m], floor))
        wd[c], l1[c] = wd_m[m], l1_m[m]
        bias_lr[c], bias_wd[c] = lr[c] * bias_lr_mult, wd[c] * bias_wd_mult
        prox = prox or l1[c] > 0
    nnz = indptr[n]
    x = np.empty(nnz, np.float32)
    pos = np.empty(nnz, np.int32)
    touched = np.empty(nnz, np.int64)
    u = _scores(
        indptr, indices, values, x_scale, uniform, table, bias, slot, scores, x, pos, touched
    )
    grad = np.empty((n, k), np.float32)
    gradients(
        labels,
        class_weight,
        y_shift[0],
        y_scale[0],
        code,
        params,
        classes,
        regressor,
        scores,
        grad,
        per_model,
    )
    for m in range(len(per_model)):
        epoch_loss[m] += per_model[m]
    g_rows = _sum_rows(indptr, pos, x, grad, u)
    for at in range(u):
        slot[touched[at]] = -1
    _update_rows(kind, table, touched[:u], g_rows, wd, lr, l1, prox, constants, bc1, bc2)
    if use_bias:
        g_bias = np.zeros((1, k), np.float32)
        for i in range(n):
            for c in range(k):
                g_bias[0, c] += grad[i, c]
        for c in range(k):
            g_bias[0, c] += bias[0, 0, c] * bias_wd[c]
        none = np.zeros(k, np.float32)
        _update_rows(
            kind,
            bias,
            np.zeros(1, np.int64),
            g_bias,
            none,
            bias_lr,
            l1,
            False,
            constants,
            bc1,
            bc2,
        )
    return 0
