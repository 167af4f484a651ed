"""SageMaker's Factorization Machines as a streaming algorithm.

``y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j`` with a squared loss
(``regressor``) or a log loss (``binary_classifier``), trained by mini-batch Adam (or RMSProp,
SGD) with separate learning rates and weight decays for the bias, linear and factor terms.

Made for sparse, very wide data: a CSR batch is never densified. The forward pass uses the
O(nnz k) form of the pairwise term, and an update reads and writes only the rows of ``w``,
``v`` and their optimiser moments that the batch uses (a lazy update, as ``torch``'s
SparseAdam). Memory is fixed by ``feature_dim x num_factors``.

The state is ``w0`` and a ``table`` that packs, for each feature, ``[v_i | w_i]`` with its
optimiser moments (one gather and one scatter per batch), and how many batches touched each
feature. With ``averaging_batches`` the table holds one more slot, each row's exponential
moving average of ``[v_i | w_i]``, brought up to date only when the row is used (a row left
alone for ``g`` steps held one value, so its average moves toward it by ``beta ** g``) and
once for all rows by ``finalize``; ``at`` holds the step each row was last brought up to.
``merge`` averages each feature's parameters weighted by the touch counts, so that a feature
one worker never saw keeps the other's value instead of being halved.

>>> import torch
>>> from streamfit.core.batch import Batch
>>> g = torch.Generator().manual_seed(0)
>>> x = (torch.rand(4000, 6, generator=g) < 0.3).float()
>>> y = ((x[:, 0] * x[:, 1] + x[:, 2] * x[:, 3]) > 0).float()  # labels from interactions
>>> algo = FactorizationMachines(feature_dim=6, num_factors=4, predictor_type="binary_classifier",
...                              linear_lr=0.05, factors_lr=0.05, mini_batch_size=100)
>>> state = algo.init_state(6)
>>> for _ in range(5):
...     for i in range(0, 4000, 100):
...         _ = algo.update(state, Batch(x[i:i + 100], y[i:i + 100]))
>>> model = algo.finalize(state)
>>> accuracy = float((model.predict(x)["predicted_label"] == y).float().mean())
>>> accuracy > 0.97
True
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from streamfit.algorithms.factorization_machines.evaluation import FactorizationMachinesEvaluator
from streamfit.algorithms.factorization_machines.hyperparameters import (
    CHECK_PARAMETERS,
    FactorizationMachinesHyperparameters,
)
from streamfit.algorithms.factorization_machines.model import FactorizationMachinesModel
from streamfit.algorithms.linear_learner.optim import (
    OptimConfig,
    gather_rows,
    moment_names,
    packed_step,
    scatter_rows,
    step,
)
from streamfit.core.algorithm import Algorithm
from streamfit.core.batch import CSR, Batch
from streamfit.core.delta import Distribution
from streamfit.core.model import Model
from streamfit.core.registry import register
from streamfit.core.state import State
from streamfit.errors import ConfigError, DataError

__all__ = ["FactorizationMachines"]


@register
class FactorizationMachines(Algorithm[FactorizationMachinesHyperparameters]):
    """Second-order factorization machines for regression and binary classification."""

    name = "factorization-machines"
    hyperparameters_class = FactorizationMachinesHyperparameters
    model_class = FactorizationMachinesModel
    #: Averaging two shards' SGD runs (weighted per feature by how often each shard used it)
    #: lands within 2.4% of one pass's log loss on the shared checks' data; allowed 5%.
    merge_tolerance = 0.05
    #: The table's shape and slots, what its rows mean, and averaging on or off (its horizon
    #: may change).
    fixed_hyperparameters = frozenset(
        {
            "feature_dim",
            "num_factors",
            "predictor_type",
            "optimizer",
            "hash_features",
            "averaging_batches",
        }
    )
    size_hyperparameters = ("feature_dim", "num_factors", "optimizer", "averaging_batches")
    check_parameters = CHECK_PARAMETERS
    #: For a parameter server: sums that add up across workers (the rest are averaged); the
    #: lazy update writes only the batch's columns' rows of the table and its bookkeeping.
    distribution = Distribution(
        mode="parameter-server",
        delta_rules=dict.fromkeys(("touches", "step", "loss_sum", "loss_rows"), "count"),
        touched_tensors=frozenset({"table", "touches", "at"}),
    )

    @property
    def optim(self) -> OptimConfig:
        hp = self.hp
        return OptimConfig(hp.optimizer, hp.beta_1, hp.beta_2, hp.momentum, hp.eps)

    def expected_features(self) -> int | None:
        return self.hp.feature_dim

    def hash_space(self) -> int | None:
        return self.hp.feature_dim if self.hp.hash_features else None

    def fixed_settings(self, hp: FactorizationMachinesHyperparameters) -> dict[str, Any]:
        return {**super().fixed_settings(hp), "averaging_batches": bool(hp.averaging_batches)}

    # -- the four operations -----------------------------------------------------------------

    def state_bytes(self, n_features: int) -> int:
        hp = self.hp
        slots = 1 + len(moment_names(hp.optimizer)) + (1 if hp.averaging_batches else 0)
        per_row = 4 * slots * (hp.num_factors + 1) + 8 + (8 if hp.averaging_batches else 0)
        return n_features * per_row

    def init_state(self, n_features: int, device: torch.device | str = "cpu") -> State:
        hp = self.hp
        state = self.new_state(n_features)
        g = state.generator
        d, k = n_features, hp.num_factors
        w0 = _init(
            (1,),
            hp.bias_init_method,
            hp.bias_init_sigma,
            hp.bias_init_scale,
            hp.bias_init_value,
            g,
        )
        w = _init(
            (d,),
            hp.linear_init_method,
            hp.linear_init_sigma,
            hp.linear_init_scale,
            hp.linear_init_value,
            g,
        )
        v = _init(
            (d, k),
            hp.factors_init_method,
            hp.factors_init_sigma,
            hp.factors_init_scale,
            hp.factors_init_value,
            g,
        )
        slots = 1 + len(moment_names(hp.optimizer)) + (1 if hp.averaging_batches else 0)
        table = torch.zeros(d, slots, k + 1)
        table[:, 0, :k] = v
        table[:, 0, k] = w
        t = {"w0": w0, "table": table, "touches": torch.zeros(d, dtype=torch.float64)}
        for m in moment_names(hp.optimizer):
            t[f"w0.{m}"] = torch.zeros(1)
        if hp.averaging_batches:
            table[:, -1] = table[:, 0]
            t["w0.avg"] = w0.clone()
            t["at"] = torch.zeros(d, dtype=torch.int64)
        state.tensors = {name: value.to(device) for name, value in t.items()}
        state.meta.update(step=0, loss_sum=0.0, loss_rows=0)
        return state

    def touched_rows(self, batch: Batch) -> torch.Tensor | None:
        """The batch's columns (a dense batch's columns with a nonzero): ``update`` steps,
        counts and brings up to date only those rows (decay and averages included)."""
        x = batch.features
        if batch.n_rows == 0:
            return torch.zeros(0, dtype=torch.int64, device=batch.device)
        if isinstance(x, CSR):
            return x.indices
        return (x != 0).any(0).nonzero().squeeze(1)

    def _update(self, state: State, batch: Batch) -> float:
        """One optimiser step on ``batch``; returns its summed loss before the step."""
        hp = self.hp
        y = self._labels(batch)
        t = state.tensors
        x, n = batch.features, batch.n_rows
        if isinstance(x, CSR):
            uniq, inverse, order, starts = x.columns()
            vals, offsets = x.values, x.indptr[:-1]
            rows_u = gather_rows(t["table"], uniq)  # (u, slots, k + 1)
            v_u, w_u = rows_u[:, 0, :-1], rows_u[:, 0, -1]
            # Per row: s = sum_i v_i x_i, q = sum_i |v_i|^2 x_i^2 and the linear term.
            s = F.embedding_bag(inverse, v_u, offsets, mode="sum", per_sample_weights=vals)
            q = _bag(inverse, (v_u * v_u).sum(1), offsets, vals * vals)
            lin = _bag(inverse, w_u, offsets, vals)
        else:
            rows_u = None
            v_u, w_u = t["table"][:, 0, :-1], t["table"][:, 0, -1]
            s, lin = x @ v_u, x @ w_u
            q = ((x * x) @ (v_u * v_u)).sum(1)
        raw = t["w0"] + lin + 0.5 * ((s * s).sum(1) - q)
        loss, g = _loss_and_grad(hp.predictor_type, raw, y)
        g = g * (hp.rescale_grad / n)
        state.meta["step"] += 1
        if isinstance(x, CSR):
            # Per column i (the transposed products, as bags over the rows using it):
            # dw_i = sum_r g_r x_ri and dv_i = sum_r g_r x_ri s_r - v_i sum_r g_r x_ri^2.
            rows = x.row_ids().index_select(0, order)
            by_col = vals.index_select(0, order)
            gs = torch.cat([g.unsqueeze(1) * s, g.unsqueeze(1)], 1)
            grad = F.embedding_bag(rows, gs, starts, mode="sum", per_sample_weights=by_col)
            grad[:, :-1] -= v_u * _bag(rows, g, starts, by_col * by_col).unsqueeze(1)
            ones = torch.ones(uniq.numel(), dtype=torch.float64, device=uniq.device)
            t["touches"].index_add_(0, uniq, ones)
            self._table_step(state, grad, uniq, rows_u)
        else:
            grad = torch.cat([x.t() @ (g.unsqueeze(1) * s), (x.t() @ g).unsqueeze(1)], 1)
            grad[:, :-1] -= v_u * ((x * x).t() @ g).unsqueeze(1)
            used = (x != 0).any(0)
            t["touches"].add_(used.double())
            if bool(used.all()):
                self._table_step(state, grad, None, None)
            else:  # lazy as in the sparse case: a column of zeros is not a feature seen
                cols = used.nonzero().squeeze(1)
                self._table_step(state, grad.index_select(0, cols), cols, None)
        self._step(state, "w0", g.sum().view(1), None)
        if hp.averaging_batches:
            t["w0.avg"].lerp_(t["w0"], 1.0 / hp.averaging_batches)
        total = float(loss.double().sum())
        state.meta["loss_sum"] += total
        state.meta["loss_rows"] += n
        return total

    def _labels(self, batch: Batch) -> torch.Tensor:
        if batch.labels is None:
            raise ConfigError(f"{self.name} needs labelled rows")
        y = batch.labels
        if self.hp.predictor_type == "binary_classifier":
            bad = (y != 0) & (y != 1)
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                row = batch.end_position - batch.n_rows + i  # exact when no row was skipped
                raise DataError(
                    f"label {float(y[i])} of row {row} is not 0 or 1 "
                    "(a binary_classifier's labels)",
                    source=self.name,
                )
        return y.to(torch.float32)

    def _clip(self, grad: torch.Tensor) -> torch.Tensor:
        c = self.hp.clip_gradient
        return grad if c is None else grad.clamp_(-c, c)

    def _step(self, state: State, name: str, grad: torch.Tensor, rows: torch.Tensor | None) -> None:
        """The bias's step (``w0`` and its moments are tensors of their own)."""
        hp = self.hp
        t = state.tensors
        buffers = {m: t[f"{name}.{m}"] for m in moment_names(hp.optimizer)}
        step(
            self.optim,
            t[name],
            self._clip(grad),
            buffers,
            torch.tensor(hp.bias_lr, device=grad.device),
            state.meta["step"],
            rows=rows,
            wd=torch.tensor(hp.bias_wd, device=grad.device) if hp.bias_wd > 0 else None,
        )

    def _table_step(
        self,
        state: State,
        grad: torch.Tensor,
        rows: torch.Tensor | None,
        gathered: torch.Tensor | None,
    ) -> None:
        """The step of ``[v | w]`` for ``rows`` (all when None), learning rate and decay per
        column: ``factors_*`` for ``v``, ``linear_*`` for ``w``."""
        hp = self.hp
        k = hp.num_factors
        device = grad.device
        lr = torch.full((k + 1,), hp.factors_lr, device=device)
        lr[k] = hp.linear_lr
        wd: torch.Tensor | None = None
        if hp.factors_wd > 0 or hp.linear_wd > 0:
            wd = torch.full((k + 1,), hp.factors_wd, device=device)
            wd[k] = hp.linear_wd
        table = state.tensors["table"]
        t = state.meta["step"]
        if not hp.averaging_batches:
            packed_step(self.optim, table, self._clip(grad), lr, t, rows, wd, gathered)
            return
        if rows is None:
            sel = table
        else:
            sel = gathered if gathered is not None else gather_rows(table, rows)
        at = state.tensors["at"]
        beta = 1.0 - 1.0 / hp.averaging_batches
        # Catch up: since its last step the row held its parameters unchanged.
        idle = (t - 1 - (at if rows is None else at.index_select(0, rows))).to(sel.dtype)
        sel[:, -1].lerp_(sel[:, 0], (1 - beta**idle).unsqueeze(1))
        packed_step(self.optim, sel[:, :-1], self._clip(grad), lr, t, None, wd)
        sel[:, -1].lerp_(sel[:, 0], 1.0 - beta)
        if rows is None:
            at.fill_(t)
        else:
            at.index_fill_(0, rows, t)
            scatter_rows(table, rows, sel)

    def _merge(self, a: State, b: State) -> State:
        """Each feature's parameters and moments averaged, weighted by how many batches of
        each shard used it (rows neither used keep ``a``'s); the bias by rows seen."""
        out = a.clone()
        ta, tb = a.tensors, {k: v.to(a.device) for k, v in b.tensors.items()}
        ca, cb = ta["touches"], tb["touches"]
        total = ca + cb
        share = torch.where(total > 0, cb / total.clamp_min(1e-300), 0.0).float()
        na, nb = float(a.meta["loss_rows"]), float(b.meta["loss_rows"])
        bias_share = nb / (na + nb) if na + nb > 0 else 0.5
        out.tensors["table"] = ta["table"] + share.view(-1, 1, 1) * (tb["table"] - ta["table"])
        bias_keys = ["w0", *(f"w0.{m}" for m in moment_names(self.hp.optimizer))]
        for key in bias_keys + (["w0.avg"] if "w0.avg" in ta else []):
            out.tensors[key] = torch.lerp(ta[key], tb[key], bias_share)
        out.tensors["touches"] = total
        if "at" in ta:  # averages are brought up from the later of the two
            out.tensors["at"] = torch.maximum(ta["at"], tb["at"])
        out.meta["step"] = max(int(a.meta["step"]), int(b.meta["step"]))
        for key in ("loss_sum", "loss_rows"):
            out.meta[key] = a.meta[key] + b.meta[key]
        return out

    def _finalize(self, state: State, **post_training: Any) -> FactorizationMachinesModel:
        t = state.tensors
        rows = int(state.meta["loss_rows"])
        meta = {
            "predictor_type": self.hp.predictor_type,
            "n_features": state.n_features,
            "num_factors": self.hp.num_factors,
            "hash_features": self.hp.hash_features,
            "rows": rows,
            "train_metrics": {
                "progressive_loss": state.meta["loss_sum"] / rows if rows else math.nan
            },
        }
        params, w0 = t["table"][:, 0], t["w0"]
        if self.hp.averaging_batches:
            # Every row's average brought up to the last step, as if it were used there.
            beta = 1.0 - 1.0 / self.hp.averaging_batches
            idle = (int(state.meta["step"]) - t["at"]).to(params.dtype)
            params = torch.lerp(params, t["table"][:, -1], (beta**idle).unsqueeze(1))
            w0 = t["w0.avg"]
            meta["averaging_batches"] = self.hp.averaging_batches
        tensors = {
            "w0": w0[0].clone(),
            "w": params[:, -1].contiguous(),
            "v": params[:, :-1].contiguous(),
        }
        return FactorizationMachinesModel(tensors, meta)

    # -- hooks -------------------------------------------------------------------------------

    def evaluator(self, model: Model) -> FactorizationMachinesEvaluator:
        assert isinstance(model, FactorizationMachinesModel)
        return FactorizationMachinesEvaluator(model)


def _bag(
    indices: torch.Tensor, table: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Weighted sums of a vector's entries per bag."""
    return F.embedding_bag(
        indices, table.unsqueeze(1), offsets, mode="sum", per_sample_weights=weights
    ).squeeze(1)


def _init(
    shape: tuple[int, ...],
    method: str,
    sigma: float,
    scale: float | None,
    value: float,
    generator: torch.Generator,
) -> torch.Tensor:
    if method == "constant":
        return torch.full(shape, value)
    if method == "uniform":
        bound = scale if scale is not None else sigma * math.sqrt(3.0)  # sigma's variance
        return (torch.rand(shape, generator=generator) * 2 - 1) * bound
    return torch.randn(shape, generator=generator) * sigma


def _loss_and_grad(
    kind: str, raw: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row loss and its derivative in the raw score: log loss on logits, or half the
    squared error."""
    if kind == "binary_classifier":
        return F.softplus(raw) - y * raw, torch.sigmoid(raw) - y
    err = raw - y
    return 0.5 * err * err, err
