"""Linear Learner's step on a sparse batch as one compiled CPU kernel.

The PyTorch step (:meth:`LinearLearner._update_reference`) costs about twenty tensor
operations a batch, a sort of the batch's columns, and a gather and a scatter of the weights
and of every optimiser buffer: on click-like rows (1,000 rows of 30 columns) the operations'
fixed costs and the scattered rows, not the arithmetic, were its time. This kernel does the
same step in one call, in place on the state's tensors: scaling, every candidate's scores,
the loss and its gradient (:mod:`.kernel_losses`), class weights, the gradient summed per
touched column (found by a table from column to slot instead of a sort), the optimiser's
lazy update of only those rows (L2, decay, L1's prox) and the bias step.

The weights and their optimiser buffers are kept in one table, ``(d, 1 + buffers, k)``: a
touched row's weights and moments are then adjacent in memory, one run of cache lines
instead of one per tensor (half the update's time with 32 candidates). The state keeps its
tensors, names and shapes: ``weight``, ``weight.m``, ... are views of that table
(:func:`pack`), which a checkpoint saves as separate tensors, as before.

It is a CPU path only; CUDA and dense batches keep the PyTorch step, which stays the
reference: the tests compare the two on random batches over several steps. They differ only
by float32 rounding (sums in another order, Cephes' exp and log for logistic loss).

>>> from streamfit.algorithms.linear_learner import LinearLearner
>>> from streamfit.core.batch import CSR, Batch
>>> algo = LinearLearner(predictor_type="binary_classifier", num_models=2)
>>> state = algo.init_state(6)
>>> x = CSR.from_dense(torch.eye(6)[:4])
>>> _ = algo.update(state, Batch(x, torch.tensor([0.0, 1.0, 0.0, 1.0])))
>>> state.meta["step"], state.tensors["weight.m"]._base is state.tensors["weight"]._base
(1, True)
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import Any

import numpy as np
import torch

from streamfit.algorithms.linear_learner.jit import jit, prefetch
from streamfit.algorithms.linear_learner.kernel_losses import LOSS_CODES, SOFTMAX, gradients
from streamfit.algorithms.linear_learner.losses import LossParams
from streamfit.algorithms.linear_learner.optim import OptimConfig, moment_names
from streamfit.core.batch import CSR

__all__ = ["BAD_INDEX", "BAD_LABEL", "SparseStep", "pack", "sparse_scores", "sparse_step"]

_OPTIMIZERS = {"sgd": 0, "adam": 1, "rmsprop": 2, "adagrad": 3}
#: What the kernel returns when it refused a batch before changing anything.
BAD_LABEL, BAD_INDEX = 1, 2
#: Rows asked for ahead of use (:func:`jit.prefetch`): enough in flight to cover the
#: memory's latency; 8 to 32 measured best (a 2^20-row table, 1 and 32 candidates).
_AHEAD = 16


def pack(tensors: dict[str, torch.Tensor], name: str, buffers: tuple[str, ...]) -> torch.Tensor:
    """``tensors[name]`` and its optimiser buffers ``f"{name}.{b}"`` (zeros where absent) as
    views of one table whose next-to-last axis holds them in that order; returns the table.
    A state whose tensors already are such views keeps them; one given new tensors (by a
    merge, a load, a pull) has them packed again, once.

    >>> t = {"w": torch.ones(3, 2)}
    >>> pack(t, "w", ("v",)).shape, t["w.v"].tolist(), pack(t, "w", ("v",)) is t["w"]._base
    (torch.Size([3, 2, 2]), [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], True)
    """
    keys = (name, *(f"{name}.{b}" for b in buffers))
    first = tensors[name]
    shape = (*first.shape[:-1], len(keys), first.shape[-1])
    base = first._base
    if (
        base is not None
        and base.shape == shape
        and base.is_contiguous()
        and all(
            key in tensors
            and tensors[key]._base is base
            and tensors[key].storage_offset() == i * shape[-1]
            for i, key in enumerate(keys)
        )
    ):
        return base
    table = torch.empty(shape, dtype=first.dtype, device=first.device)
    for i, key in enumerate(keys):
        view = table.select(-2, i)
        if key in tensors:
            view.copy_(tensors[key])
        else:
            view.zero_()
        tensors[key] = view
    return table


class SparseStep:
    """The kernel bound to one algorithm's settings: call it with a state's tensors and a
    batch. Built once per algorithm; what it reads of the state is read on every call."""

    def __init__(
        self,
        optim: OptimConfig,
        loss: str,
        loss_params: LossParams,
        classes: int,
        regressor: bool,
        use_bias: bool,
        bias_lr_mult: float,
        bias_wd_mult: float,
    ) -> None:
        self.optim = optim
        self.buffers = moment_names(optim.kind)
        self.kind = _OPTIMIZERS[optim.kind]
        self.code = LOSS_CODES[loss]
        p = loss_params
        self.params = np.array(
            [p.margin, p.quantile, p.huber_delta, p.loss_insensitivity], dtype=np.float32
        )
        self.constants = np.array(
            [optim.beta_1, optim.beta_2, optim.momentum, optim.eps, bias_lr_mult, bias_wd_mult],
            dtype=np.float32,
        )
        self.classes = classes
        self.regressor = regressor
        self.use_bias = use_bias
        self._scale: tuple[weakref.ref[torch.Tensor], int, float] | None = None

    def uniform_scale(self, x_scale: torch.Tensor) -> float:
        """``x_scale``'s one value where all are equal (sparse scaling has one factor for
        every feature), else NaN: the kernel then divides by it instead of gathering a
        scale per stored value (a quarter of the scores' time with 32 candidates). Checked
        once per tensor and per in-place change of it."""
        seen = self._scale
        if seen is not None and seen[0]() is x_scale and seen[1] == x_scale._version:
            return seen[2]
        first = x_scale[:1]
        value = float(first) if bool((x_scale == first).all()) else math.nan
        self._scale = (weakref.ref(x_scale), x_scale._version, value)
        return value

    def __call__(
        self,
        tensors: dict[str, torch.Tensor],
        x: CSR,
        labels: torch.Tensor,
        t: int,
        decay: float,
        floor: float,
    ) -> tuple[int, torch.Tensor, float]:
        """Step ``t`` on batch ``x``: ``(status, scores, loss)``, the scores before the step
        and the best candidate's summed loss; status 0 done, else ``BAD_LABEL`` /
        ``BAD_INDEX`` and nothing changed. Each candidate's learning rate is ``max(lr *
        decay, min(lr, floor))`` (the scheduler's, as the reference's)."""
        weight = pack(tensors, "weight", self.buffers).numpy()
        bias = pack(tensors, "bias", self.buffers).numpy()
        k = weight.shape[-1]
        scores = np.empty((x.n_rows, k), np.float32)
        per_model = np.zeros(k // self.classes, np.float64)
        cfg = self.optim
        status = sparse_step(
            x.indptr.to(torch.int64).numpy(),
            x.indices.to(torch.int64).numpy(),
            x.values.to(torch.float32).numpy(),
            labels.to(torch.float32).numpy(),
            tensors["x_scale"].numpy(),
            np.float32(self.uniform_scale(tensors["x_scale"])),
            tensors["class_weight"].numpy(),
            tensors["y_shift"].numpy(),
            tensors["y_scale"].numpy(),
            weight,
            bias.reshape(1, *bias.shape),
            tensors["lr"].numpy(),
            tensors["wd"].numpy(),
            tensors["l1"].numpy(),
            np.float32(decay),
            np.float32(floor),
            self.kind,
            self.constants,
            np.float32(1 - cfg.beta_1**t),
            np.float32(1 - cfg.beta_2**t),
            self.code,
            self.params,
            self.classes,
            self.regressor,
            self.use_bias,
            _slots(weight.shape[0]),
            scores,
            per_model,
            tensors["epoch_loss"].numpy(),
        )
        return int(status), torch.from_numpy(scores), float(per_model.min())


def sparse_scores(
    tensors: dict[str, torch.Tensor], x: CSR, buffers: tuple[str, ...]
) -> torch.Tensor:
    """Every candidate's raw score of the rows of ``x`` (a state's normalised space), read
    from the packed table: ``embedding_bag`` would copy the whole strided weight first."""
    table = pack(tensors, "weight", buffers).numpy()
    bias = tensors["bias"].numpy()
    out = np.empty((x.n_rows, table.shape[-1]), np.float32)
    _score_rows(
        x.indptr.to(torch.int64).numpy(),
        x.indices.to(torch.int64).numpy(),
        x.values.to(torch.float32).numpy(),
        tensors["x_scale"].numpy(),
        table,
        bias,
        out,
    )
    return torch.from_numpy(out)


@jit
def _score_rows(
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


_LOCAL = threading.local()


def _slots(d: int) -> np.ndarray:
    """Column -> slot among a batch's touched columns, -1 everywhere between calls (the
    kernel resets what it set), so one table per width serves every batch; one per thread,
    as the kernel runs without the GIL."""
    tables: dict[int, np.ndarray] = _LOCAL.__dict__.setdefault("slots", {})
    table = tables.get(d)
    if table is None:
        table = tables[d] = np.full(d, -1, dtype=np.int32)
    return table


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
