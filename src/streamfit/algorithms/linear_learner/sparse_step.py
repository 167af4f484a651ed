"""Linear Learner's sparse CPU step (:mod:`.sparse_kernel`) bound to a state: the packed
table its weights live in, and the call that hands a batch and the state's tensors to the
compiled kernel.

The weights and their optimiser buffers are kept in one table, ``(d, 1 + buffers, k)``: a
touched row's weights and moments are then adjacent in memory, one run of cache lines
instead of one per tensor (half the update's time with 32 candidates). The state keeps its
tensors, names and shapes: ``weight``, ``weight.m``, ... are views of that table
(:func:`pack`), which a checkpoint saves as separate tensors, as before.

numba is imported at the first sparse step, not with Linear Learner: dense training never
pays its import (0.3 s and 70 MB).

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
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from streamfit.algorithms.linear_learner.losses import LossParams
from streamfit.algorithms.linear_learner.optim import OptimConfig, moment_names
from streamfit.core.batch import CSR

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["Refused", "SparseStep", "pack", "sparse_scores"]

#: Why the kernel refused a batch (it then changed nothing): a label that is no class, or a
#: column beyond the table.
Refused = Literal["label", "index"]


def _kernel() -> ModuleType:
    """The compiled kernels, imported (with numba) on first use."""
    from streamfit.algorithms.linear_learner import sparse_kernel

    return sparse_kernel


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
        self.loss = loss
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
    ) -> tuple[Refused | None, torch.Tensor, float]:
        """Step ``t`` on batch ``x``: ``(refused, scores, loss)``, the scores before the step
        and the best candidate's summed loss; ``refused`` None, or why the batch was refused
        and nothing changed. Each candidate's learning rate is ``max(lr * decay, min(lr,
        floor))`` (the scheduler's, as the reference's)."""
        kernel = _kernel()
        weight = pack(tensors, "weight", self.buffers).numpy()
        bias = pack(tensors, "bias", self.buffers).numpy()
        k = weight.shape[-1]
        scores = np.empty((x.n_rows, k), np.float32)
        per_model = np.zeros(k // self.classes, np.float64)
        cfg = self.optim
        status = kernel.sparse_step(
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
            kernel.OPTIMIZERS[cfg.kind],
            self.constants,
            np.float32(1 - cfg.beta_1**t),
            np.float32(1 - cfg.beta_2**t),
            kernel.LOSS_CODES[self.loss],
            self.params,
            self.classes,
            self.regressor,
            self.use_bias,
            _slots(weight.shape[0]),
            scores,
            per_model,
            tensors["epoch_loss"].numpy(),
        )
        refused: Refused | None = None
        if status:
            refused = "label" if status == kernel.BAD_LABEL else "index"
        return refused, torch.from_numpy(scores), float(per_model.min())


def sparse_scores(
    tensors: dict[str, torch.Tensor], x: CSR, buffers: tuple[str, ...]
) -> torch.Tensor:
    """Every candidate's raw score of the rows of ``x`` (a state's normalised space), read
    from the packed table: ``embedding_bag`` would copy the whole strided weight first."""
    table = pack(tensors, "weight", buffers).numpy()
    bias = tensors["bias"].numpy()
    out = np.empty((x.n_rows, table.shape[-1]), np.float32)
    _kernel().score_rows(
        x.indptr.to(torch.int64).numpy(),
        x.indices.to(torch.int64).numpy(),
        x.values.to(torch.float32).numpy(),
        tensors["x_scale"].numpy(),
        table,
        bias,
        out,
    )
    return torch.from_numpy(out)


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
