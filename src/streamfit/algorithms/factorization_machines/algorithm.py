"""SageMaker's Factorization Machines as a streaming algorithm, with model packing.

``y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j`` with a squared loss
(``regressor``) or a log loss (``binary_classifier``), trained by mini-batch Adagrad (or Adam,
RMSProp, SGD) with separate learning rates and weight decays for the bias, linear and factor
terms.

Made for sparse, very wide data: a CSR batch is never densified. The forward pass uses the
O(nnz k) form of the pairwise term, and an update reads and writes only the rows of ``w``,
``v`` and their optimiser moments that the batch uses (a lazy update, as ``torch``'s
SparseAdam). Memory is fixed by ``feature_dim x num_factors x num_models``.

``num_models`` candidates (:mod:`.grid`: learning rates, factor decay and initial scale around
the hyperparameters given) train together. The state is ``w0`` (one per candidate) and a
``table`` that packs, for each feature, every candidate's ``[v_i | w_i]`` side by side with
their optimiser moments (one gather and one scatter per batch whatever ``num_models``), how
many batches touched each feature, and a reservoir of held-out scores of every candidate
(:mod:`.choice`): the latest training rows scored before they were trained on, or the
validation channel's rows. ``finalize`` keeps the best candidate for the selection criterion,
and ``finalize(candidate=i)`` any other, without reading data.

With ``averaging_batches`` the table holds one more slot, each row's exponential moving
average of its parameters, brought up to date only when the row is used (a row left alone
for ``g`` steps held one value, so its average moves toward it by ``beta ** g``) and once
for all rows by ``finalize``; ``at`` holds the step each row was last brought up to.
``merge`` averages each feature's parameters weighted by the touch counts, so that a feature
one worker never saw keeps the other's value instead of being halved.

>>> import torch
>>> from streamfit.core.batch import Batch
>>> g = torch.Generator().manual_seed(0)
>>> x = (torch.rand(4000, 6, generator=g) < 0.3).float()
>>> y = ((x[:, 0] * x[:, 1] + x[:, 2] * x[:, 3]) > 0).float()  # labels from interactions
>>> algo = FactorizationMachines(feature_dim=6, num_factors=4, predictor_type="binary_classifier",
...                              linear_lr=0.05, factors_lr=0.05, mini_batch_size=100,
...                              num_models=4)
>>> state = algo.init_state(6)
>>> for _ in range(5):
...     for i in range(0, 4000, 100):
...         _ = algo.update(state, Batch(x[i:i + 100], y[i:i + 100]))
>>> model = algo.finalize(state)
>>> accuracy = float((model.predict(x)["predicted_label"] == y).float().mean())
>>> accuracy > 0.97, model.meta["candidate"] in range(4)
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from streamfit.algorithms.factorization_machines.choice import (
    RESERVOIR_ROWS,
    choose,
    held_out,
    new_reservoir,
    start_epoch,
    summary,
)
from streamfit.algorithms.factorization_machines.evaluation import FactorizationMachinesEvaluator
from streamfit.algorithms.factorization_machines.grid import candidate_grid
from streamfit.algorithms.factorization_machines.hyperparameters import (
    CHECK_PARAMETERS,
    FactorizationMachinesHyperparameters,
)
from streamfit.algorithms.factorization_machines.model import FactorizationMachinesModel
from streamfit.algorithms.factorization_machines.packed import (
    dense_grad,
    dense_scores,
    loss_and_grad,
    sparse_grad,
    sparse_scores,
)
from streamfit.algorithms.factorization_machines.steps import bias_step, table_step
from streamfit.algorithms.factorization_machines.table import (
    SETTINGS,
    final_rows,
    initial_tensors,
    merge_states,
    slots,
    upgrade,
)
from streamfit.algorithms.linear_learner.optim import gather_rows
from streamfit.algorithms.linear_learner.selection import (
    SELECTION_SETTINGS,
    remember_scores,
    sample_held_out_scores,
)
from streamfit.core.algorithm import Algorithm, BatchStream
from streamfit.core.batch import CSR, Batch, Features
from streamfit.core.delta import Distribution
from streamfit.core.hyperparameters import parse_hyperparameters
from streamfit.core.model import Model
from streamfit.core.registry import register
from streamfit.core.state import State
from streamfit.errors import ConfigError, DataError

__all__ = ["FactorizationMachines"]


@register
class FactorizationMachines(Algorithm[FactorizationMachinesHyperparameters]):
    """Second-order factorization machines for regression and binary classification,
    ``num_models`` at a time."""

    name = "factorization-machines"
    hyperparameters_class = FactorizationMachinesHyperparameters
    model_class = FactorizationMachinesModel
    post_training = SELECTION_SETTINGS
    #: Averaging two shards' SGD runs (weighted per feature by how often each shard used it)
    #: lands within 2.4% of one pass's log loss on the shared checks' data; allowed 5%.
    merge_tolerance = 0.05
    #: The table's shape and slots, what its rows mean, and averaging on or off (its horizon
    #: may change).
    fixed_hyperparameters = frozenset(
        {
            "feature_dim",
            "num_factors",
            "num_models",
            "predictor_type",
            "optimizer",
            "hash_features",
            "averaging_batches",
        }
    )
    size_hyperparameters = (
        "feature_dim",
        "num_factors",
        "num_models",
        "optimizer",
        "averaging_batches",
    )
    check_parameters = CHECK_PARAMETERS
    #: For a parameter server: sums that add up across workers (the rest are averaged); the
    #: lazy update writes only the batch's columns' rows of the table and its bookkeeping;
    #: the held-out reservoir is the latest rows a worker scored, with its cursor.
    distribution = Distribution(
        mode="parameter-server",
        delta_rules={
            **dict.fromkeys(("touches", "step", "loss_sum", "loss_rows", "calib_seen"), "count"),
            **dict.fromkeys(
                ("calib_scores", "calib_labels", "calib_filled", "calib_next", "calib_epoch"),
                "latest",
            ),
            **dict.fromkeys(SETTINGS, "fixed"),
        },
        touched_tensors=frozenset({"table", "touches", "at"}),
    )

    def expected_features(self) -> int | None:
        return self.hp.feature_dim

    def hash_space(self) -> int | None:
        return self.hp.feature_dim if self.hp.hash_features else None

    def fixed_settings(self, hp: FactorizationMachinesHyperparameters) -> dict[str, Any]:
        return {**super().fixed_settings(hp), "averaging_batches": bool(hp.averaging_batches)}

    # -- the four operations -----------------------------------------------------------------

    def state_bytes(self, n_features: int) -> int:
        hp = self.hp
        m, width = hp.num_models, hp.num_models * (hp.num_factors + 1)
        per_row = 4 * slots(hp) * width + 8 + (8 if hp.averaging_batches else 0)
        return n_features * per_row + 4 * (m + 1) * RESERVOIR_ROWS

    def init_state(self, n_features: int, device: torch.device | str = "cpu") -> State:
        state = self.new_state(n_features)
        t = initial_tensors(self.hp, n_features, state.generator) | new_reservoir(
            state, self.hp.num_models
        )
        state.tensors = {name: value.to(device) for name, value in t.items()}
        state.meta.update(step=0, loss_rows=0)
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
        """One optimiser step of every candidate on ``batch``; returns the batch's summed
        loss (before the step) of the best candidate that has not diverged."""
        hp = self.hp
        k = hp.num_factors
        upgrade(state)
        y = self._labels(batch)
        holding = self._holding_out(state)
        if holding:
            batch, y = self._hold_out(state, batch, y)
            if not batch.n_rows:
                return 0.0
        t = state.tensors
        x, n = batch.features, batch.n_rows
        if isinstance(x, CSR):
            uniq, inverse, order, starts = x.columns()
            rows_u = gather_rows(t["table"], uniq)  # (u, slots, M (k + 1))
            params = rows_u[:, 0]
            raw, s = sparse_scores(inverse, x.indptr[:-1], x.values, params, t["w0"], k)
        else:
            rows_u, params = None, t["table"][:, 0]
            raw, s = dense_scores(x, params, t["w0"], k)
        if not holding:  # progressive validation: scored before trained on
            remember_scores(state, raw, y, regressor=False)
        loss, g = loss_and_grad(hp.predictor_type, raw, y.unsqueeze(1))
        g = g * (hp.rescale_grad / n)
        state.meta["step"] += 1
        if isinstance(x, CSR):
            rows = x.row_ids().index_select(0, order)
            grad = sparse_grad(rows, starts, x.values.index_select(0, order), params, g, s, k)
            ones = torch.ones(uniq.numel(), dtype=torch.float64, device=uniq.device)
            t["touches"].index_add_(0, uniq, ones)
            table_step(hp, state, grad, uniq, rows_u)
        else:
            grad = dense_grad(x, params, g, s, k)
            used = (x != 0).any(0)
            t["touches"].add_(used.double())
            if bool(used.all()):
                table_step(hp, state, grad, None, None)
            else:  # lazy as in the sparse case: a column of zeros is not a feature seen
                cols = used.nonzero().squeeze(1)
                table_step(hp, state, grad.index_select(0, cols), cols, None)
        bias_step(hp, state, g.sum(0))
        per_model = loss.double().sum(0)
        t["loss_sum"] += per_model
        state.meta["loss_rows"] += n
        finite = per_model[torch.isfinite(per_model)]
        # A candidate whose rate made it diverge is dropped from the choice, not fatal.
        return float(finite.min() if finite.numel() else per_model.max())

    def _holding_out(self, state: State) -> bool:
        """Whether rows are held out (one model has nothing to choose: it trains on all)."""
        return (
            self.hp.epochs > 1
            and state.tensors["w0"].numel() > 1
            and state.meta.get("hold_out", True)
            and state.meta["calib_source"] == "train"
        )

    def _hold_out(self, state: State, batch: Batch, y: torch.Tensor) -> tuple[Batch, torch.Tensor]:
        """The batch without its held-out rows, whose scores join this epoch's reservoir."""
        start_epoch(state, state.position.epoch)
        held = held_out(batch)
        if not bool(held.any()):
            return batch, y
        rows = held.nonzero().squeeze(1)
        scores = self._scores(state, batch.select(rows).features)
        remember_scores(state, scores, y[rows], regressor=False)
        keep = (~held).nonzero().squeeze(1)
        return batch.select(keep), y[keep]

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

    def _merge(self, a: State, b: State) -> State:
        for state in (a, b):
            upgrade(state)
        return merge_states(a, b, self.hp)

    def _adopt(self, state: State) -> None:
        """Continue ``state`` with the candidates' rates and decays that the hyperparameters
        given now make (the same as before unless they changed)."""
        upgrade(state)
        grid = candidate_grid(self.hp, int(state.tensors["w0"].numel()))
        for name, values in vars(grid).items():
            state.tensors[name].copy_(torch.tensor(values))

    def _finalize(self, state: State, **post_training: Any) -> FactorizationMachinesModel:
        upgrade(state)
        post = {name: v for name, v in post_training.items() if name != "candidate"}
        hp = parse_hyperparameters(
            FactorizationMachinesHyperparameters, {**self.hp.as_dict(), **post}, algorithm=self.name
        )
        t = state.tensors
        m, k = int(t["w0"].numel()), hp.num_factors
        filled = int(state.meta["calib_filled"])
        raw, labels = t["calib_scores"][:filled].cpu(), t["calib_labels"][:filled].cpu()
        criteria = (
            hp.binary_classifier_model_selection_criteria,
            hp.f_beta,
            hp.target_precision,
            hp.target_recall,
        )
        choice = choose(raw, labels, hp.predictor_type, *criteria)
        c, threshold = choice.model, choice.threshold
        if "candidate" in post_training:
            c = int(post_training["candidate"])
            if not 0 <= c < m:
                raise ConfigError(f"{self.name}: candidate must be in 0..{m - 1}, got {c}")
            threshold = choose(raw[:, c : c + 1], labels, hp.predictor_type, *criteria).threshold
        block = slice(c * (k + 1), (c + 1) * (k + 1))
        params, w0 = t["table"][:, 0, block], t["w0"][c]
        if hp.averaging_batches:  # as final_rows, for this candidate's columns only
            beta = 1.0 - 1.0 / hp.averaging_batches
            idle = (int(state.meta["step"]) - t["at"]).to(params.dtype)
            params = torch.lerp(params, t["table"][:, -1, block], (beta**idle).unsqueeze(1))
            w0 = t["w0.avg"][c]
        rows = int(state.meta["loss_rows"])
        settings = {name: t[name].cpu().tolist() for name in SETTINGS}
        meta = {
            "predictor_type": hp.predictor_type,
            "n_features": state.n_features,
            "num_factors": k,
            "hash_features": hp.hash_features,
            "rows": rows,
            "train_metrics": {
                "progressive_loss": t["loss_sum"][c].item() / rows if rows else math.nan
            },
            "threshold": threshold,
            "candidate": c,
            **{name: values[c] for name, values in settings.items()},
            "selection": summary(choice, settings, state),
        }
        if hp.averaging_batches:
            meta["averaging_batches"] = hp.averaging_batches
        tensors = {
            "w0": w0.clone(),
            "w": params[:, -1].contiguous(),
            "v": params[:, :-1].contiguous(),
        }
        return FactorizationMachinesModel(tensors, meta)

    # -- hooks -------------------------------------------------------------------------------

    def end_epoch(self, state: State, validation: BatchStream | None) -> bool:
        """With a validation channel to choose on, later epochs train on every row."""
        if validation is not None:
            state.meta["hold_out"] = False
        return False

    def calibrate(self, state: State, batches: Iterable[Batch]) -> None:
        """Reservoir-sample held-out rows' scores of every candidate, as ``finalize`` would
        make them (averages brought up to date): they replace the training rows'."""
        upgrade(state)
        sample_held_out_scores(
            state,
            (
                (self._scores(state, batch.features), batch.labels)
                for batch in batches
                if batch.n_rows and batch.labels is not None
            ),
        )

    def _scores(self, state: State, x: Features) -> torch.Tensor:
        """Every candidate's raw score of the rows ``x`` ``(n, M)``, as their models give it."""
        t = state.tensors
        k = self.hp.num_factors
        w0 = t["w0.avg"] if self.hp.averaging_batches else t["w0"]
        if isinstance(x, CSR):
            uniq, inverse = x.unique_indices()
            params = final_rows(state, self.hp, uniq)
            return sparse_scores(inverse, x.indptr[:-1], x.values, params, w0, k)[0]
        return dense_scores(x, final_rows(state, self.hp, None), w0, k)[0]

    def evaluator(self, model: Model) -> FactorizationMachinesEvaluator:
        assert isinstance(model, FactorizationMachinesModel)
        return FactorizationMachinesEvaluator(model)
