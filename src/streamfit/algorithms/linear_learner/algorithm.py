"""SageMaker's Linear Learner as a streaming algorithm, with model packing.

``num_models`` candidates with different learning rates and regularisation train together as
one ``(d, M*C)`` weight matrix: a batch costs one matrix product and one optimiser step for all
of them. The state keeps, besides weights and optimiser moments, a reservoir of held-out scores
of every candidate, so that ``finalize`` picks the best candidate and its threshold for any
selection criterion without reading data again.

>>> import torch
>>> from streamfit.core.batch import Batch
>>> algo = LinearLearner(predictor_type="binary_classifier", num_models=4)
>>> x = torch.randn(20_000, 5, generator=torch.Generator().manual_seed(0))
>>> y = (x[:, 0] > 0).float()
>>> state = algo.init_state(5)
>>> for i in range(0, 20_000, 500):
...     _ = algo.update(state, Batch(x[i:i + 500], y[i:i + 500]))
>>> model = algo.finalize(state)
>>> float((model.predict(x)["predicted_label"] == y).float().mean()) > 0.9
True
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from streamfit.algorithms.linear_learner.evaluation import LinearLearnerEvaluator
from streamfit.algorithms.linear_learner.hyperparameters import (
    CHECK_PARAMETERS,
    LinearLearnerHyperparameters,
)
from streamfit.algorithms.linear_learner.losses import LossParams, loss_and_grad
from streamfit.algorithms.linear_learner.model import LinearLearnerModel, linear_scores
from streamfit.algorithms.linear_learner.optim import (
    OptimConfig,
    candidate_grid,
    moment_names,
    step,
)
from streamfit.algorithms.linear_learner.replay import (
    HOLDOUT,
    RESERVOIR,
    STORE_TENSORS,
    merge_stores,
)
from streamfit.algorithms.linear_learner.scaling import (
    class_weights,
    fit_scaler,
    merge_states,
    scale_features,
    to_raw_space,
)
from streamfit.algorithms.linear_learner.selection import (
    SELECTION_SETTINGS,
    remember_scores,
    sample_held_out_scores,
    select,
)
from streamfit.algorithms.linear_learner.small_reads import KeepsSmallReads
from streamfit.algorithms.linear_learner.sparse_step import SparseStep, pack, sparse_scores
from streamfit.core.algorithm import BatchStream
from streamfit.core.batch import CSR, Batch
from streamfit.core.delta import Distribution
from streamfit.core.hyperparameters import parse_hyperparameters
from streamfit.core.registry import register
from streamfit.core.state import State
from streamfit.errors import ConfigError, DataError

__all__ = ["LinearLearner"]

_PARAMS = ("weight", "bias")


@register
class LinearLearner(KeepsSmallReads):
    """Linear models for binary, multiclass and regression, ``num_models`` at a time."""

    name = "linear-learner"
    hyperparameters_class = LinearLearnerHyperparameters
    model_class = LinearLearnerModel
    post_training = SELECTION_SETTINGS
    merge_tolerance = 0.05
    #: The candidates' columns and the optimiser's moments are the state's shape.
    fixed_hyperparameters = frozenset({"predictor_type", "num_models", "num_classes", "optimizer"})
    size_hyperparameters = (
        "feature_dim",
        "num_models",
        "num_classes",
        "num_calibration_samples",
        "replay_capacity_mb",
    )
    check_parameters = CHECK_PARAMETERS
    #: For a parameter server: the scaler, class weights and candidates' settings are fixed
    #: by ``prepare`` before workers start; the held-out reservoir is the latest rows a
    #: worker scored before training on them, with its cursor, so it travels whole. A sparse
    #: batch's lazy update writes only its columns' rows of the weights and their moments
    #: (decay and L1 included); the reservoir and the bias are other tensors.
    distribution = Distribution(
        mode="parameter-server",
        delta_rules={
            **dict.fromkeys(
                ("lr", "wd", "l1", "x_shift", "x_scale", "y_shift", "y_scale", "class_weight"),
                "fixed",
            ),
            **dict.fromkeys(
                ("calib_scores", "calib_labels", "calib_filled", "calib_next"), "latest"
            ),
            **dict.fromkeys(("epoch_loss", "epoch_rows", "rows", "step", "calib_seen"), "count"),
            # Workers keep no rows (``for_worker``); a server resumed from a state of one
            # process keeps its own.
            **dict.fromkeys((RESERVOIR, HOLDOUT, "fresh_rows", *STORE_TENSORS), "fixed"),
        },
        touched_tensors=frozenset({"weight", "weight.m", "weight.v", "weight.mom"}),
    )

    # -- resolved settings -----------------------------------------------------------------

    @property
    def loss_params(self) -> LossParams:
        hp = self.hp
        return LossParams(hp.margin, hp.quantile, hp.huber_delta, hp.loss_insensitivity)

    @property
    def optim(self) -> OptimConfig:
        hp = self.hp
        kind = hp.resolved_optimizer
        default_beta_2 = 0.9 if kind == "rmsprop" else 0.999
        return OptimConfig(
            kind=kind,
            beta_1=0.9 if hp.beta_1 == "auto" else hp.beta_1,
            beta_2=default_beta_2 if hp.beta_2 == "auto" else hp.beta_2,
            momentum=0.9 if hp.momentum == "auto" else hp.momentum,
        )

    def _calibration_rows(self) -> int:
        hp = self.hp
        if hp.num_calibration_samples != "auto":
            return hp.num_calibration_samples
        # 20,000 held-out rows estimate accuracy to about 0.3%, plenty to tell candidates
        # apart, in at most 4 MB of scores.
        k = hp.resolved_num_models * hp.n_outputs
        return max(1000, min(20_000, (1 << 20) // k))

    def warmup_rows(self) -> int:
        return self.hp.num_point_for_scaler

    def expected_features(self) -> int | None:
        return None if self.hp.feature_dim == "auto" else self.hp.feature_dim

    def fixed_settings(self, hp: LinearLearnerHyperparameters) -> dict[str, Any]:
        return {
            "predictor_type": hp.predictor_type,
            "num_models": hp.resolved_num_models,
            "num_classes": hp.n_outputs,
            "optimizer": hp.resolved_optimizer,
        }

    # -- the four operations -----------------------------------------------------------------

    def state_bytes(self, n_features: int) -> int:
        hp = self.hp
        k = hp.resolved_num_models * hp.n_outputs
        params = (n_features + 1) * k * (1 + len(moment_names(self.optim.kind)))
        calibration = self._calibration_rows() * (k + 1)
        return 4 * (params + 2 * n_features + calibration)

    def init_state(self, n_features: int, device: torch.device | str = "cpu") -> State:
        hp = self.hp
        state = self.new_state(n_features)
        m, c = hp.resolved_num_models, hp.n_outputs
        k = m * c
        g = state.generator
        if hp.init_method == "uniform":
            # In place: the same values as (rand * 2 - 1) * scale, without two temporaries
            # of the table's size (half the time of it for 32 models of 2^20 features).
            weight = torch.rand(n_features, k, generator=g).mul_(2).sub_(1).mul_(hp.init_scale)
        else:
            weight = torch.randn(n_features, k, generator=g).mul_(hp.init_sigma)
        lr, wd, l1 = candidate_grid(
            m,
            None if hp.learning_rate == "auto" else hp.learning_rate,
            None if hp.wd == "auto" else hp.wd,
            None if hp.l1 == "auto" else hp.l1,
            self.optim.kind,
        )
        r = self._calibration_rows()
        t: dict[str, torch.Tensor] = {
            "weight": weight,
            "bias": torch.full((k,), hp.init_bias),
            "lr": torch.tensor(lr),
            "wd": torch.tensor(wd),
            "l1": torch.tensor(l1),
            "x_shift": torch.zeros(n_features),
            "x_scale": torch.ones(n_features),
            "y_shift": torch.zeros(1),
            "y_scale": torch.ones(1),
            "class_weight": torch.ones(max(c, 2)),
            "calib_scores": torch.zeros(r, k),
            "calib_labels": torch.zeros(r),
            "epoch_loss": torch.zeros(m, dtype=torch.float64),
        }
        for p in _PARAMS:
            if torch.device(device).type == "cpu":  # as the sparse kernel keeps them
                pack(t, p, moment_names(self.optim.kind))
            else:
                for b in moment_names(self.optim.kind):
                    t[f"{p}.{b}"] = torch.zeros_like(t[p])
        state.tensors = {name: v.to(device) for name, v in t.items()}
        state.meta.update(
            prepared=False,
            step=0,
            calib_filled=0,
            calib_seen=0,
            calib_next=0,
            calib_source="train",
            epoch_rows=0,
            rows=0,
            best_loss=None,
            bad_epochs=0,
            loss_history=[],
        )
        return state

    def prepare(self, state: State, batches: Sequence[Batch]) -> None:
        """Feature and label scaling and class weights from the first rows."""
        if state.meta["prepared"] or not batches:
            return
        hp = self.hp
        fit_scaler(state, batches, hp.normalize_data, hp.resolved_normalize_label)
        labels = torch.cat([b.labels for b in batches if b.labels is not None])
        state.tensors["class_weight"] = class_weights(hp, labels).to(state.device)
        state.meta["prepared"] = True
        state.meta["sparse_input"] = batches[0].is_sparse
        self._start_stores(state, batches[0])

    def touched_rows(self, batch: Batch) -> torch.Tensor | None:
        """A sparse batch's columns; None for a dense one (its step decays every row)."""
        if batch.n_rows == 0:
            return torch.zeros(0, dtype=torch.int64, device=batch.device)
        return batch.features.indices if isinstance(batch.features, CSR) else None

    def _update(self, state: State, batch: Batch) -> float:
        if batch.labels is None:
            raise ConfigError("linear-learner needs labelled rows")
        if not state.meta["prepared"]:
            self.prepare(state, [batch])
        if isinstance(batch.features, CSR) and state.device.type == "cpu":
            loss = self._update_fused(state, batch.features, batch.labels)
            if loss is not None:
                return loss
        return self._update_reference(state, batch)

    def _update_reference(self, state: State, batch: Batch) -> float:
        """The step in PyTorch: any device, dense or sparse (the fused kernel's reference)."""
        hp = self.hp
        assert batch.labels is not None
        self._check_labels(batch.labels)
        t = state.tensors
        x = scale_features(batch.features, t["x_shift"], t["x_scale"])
        y = batch.labels
        if hp.predictor_type == "regressor":
            y = (y - t["y_shift"]) / t["y_scale"]
        n, m, c = batch.n_rows, hp.resolved_num_models, hp.n_outputs
        s = linear_scores(x, t["weight"], t["bias"])
        remember_scores(state, s, batch.labels, regressor=hp.predictor_type == "regressor")
        shaped = s.view(n, m, c) if c > 1 else s
        loss, grad = loss_and_grad(hp.resolved_loss, shaped, y, self.loss_params)
        per_model = loss.detach().double().sum(0)
        t["epoch_loss"] += per_model
        self._count(state, n)
        if hp.predictor_type != "regressor":
            row_weight = t["class_weight"][y.long()]
            grad = grad * (row_weight / n).view(-1, *([1] * (grad.dim() - 1)))
        else:
            grad = grad / n
        grad = grad.reshape(n, m * c)
        self._step(state, x, grad)
        return float(per_model.min())

    @functools.cached_property
    def _sparse_step(self) -> SparseStep:
        hp = self.hp
        return SparseStep(
            self.optim,
            hp.resolved_loss,
            self.loss_params,
            hp.n_outputs,
            hp.predictor_type == "regressor",
            hp.use_bias,
            1.0 if hp.bias_lr_mult == "auto" else hp.bias_lr_mult,
            0.0 if hp.bias_wd_mult == "auto" else hp.bias_wd_mult,
        )

    def _update_fused(self, state: State, x: CSR, labels: torch.Tensor) -> float | None:
        """The step as one compiled kernel (CPU, sparse rows: :mod:`.sparse_kernel`); None
        where it refused the batch untouched (a column beyond the table: the reference step
        raises its own error)."""
        step = state.meta["step"] + 1
        decay, floor = self._schedule(step)
        refused, scores, loss = self._sparse_step(state.tensors, x, labels, step, decay, floor)
        if refused == "label":
            self._check_labels(labels)
        if refused:
            return None
        remember_scores(state, scores, labels, regressor=self.hp.predictor_type == "regressor")
        self._count(state, x.n_rows)
        return loss

    @staticmethod
    def _count(state: State, n: int) -> None:
        state.meta["epoch_rows"] += n
        state.meta["rows"] = state.meta.get("rows", 0) + n  # absent in states from before it
        state.meta["step"] += 1

    def _check_labels(self, labels: torch.Tensor) -> None:
        hp = self.hp
        if hp.predictor_type == "regressor":
            return
        limit = 2 if hp.predictor_type == "binary_classifier" else hp.n_outputs
        bad = (labels < 0) | (labels >= limit) | (labels != labels.floor())
        if bool(bad.any()):
            value = float(labels[bad][0])
            raise DataError(
                f"label {value} is not a class of a {hp.predictor_type} (expected 0..{limit - 1})",
                source="linear-learner",
            )

    def _schedule(self, step: int) -> tuple[float, float]:
        """The scheduler at ``step``: each learning rate ``lr`` is ``max(lr * decay,
        min(lr, floor))`` (no decay without it)."""
        hp = self.hp
        if not hp.use_lr_scheduler:
            return 1.0, 0.0
        every = 100 if hp.lr_scheduler_step == "auto" else hp.lr_scheduler_step
        factor = 0.99 if hp.lr_scheduler_factor == "auto" else hp.lr_scheduler_factor
        floor = 1e-5 if hp.lr_scheduler_minimum_lr == "auto" else hp.lr_scheduler_minimum_lr
        return factor ** (step // every), floor

    def _settings(self, state: State, step: int) -> tuple[torch.Tensor, ...]:
        """Step ``step``'s learning rate, L2 and L1 per weight column, then the bias's
        learning rate and L2 (a candidate's settings repeated over its classes' columns)."""
        hp = self.hp
        t = state.tensors
        lr = t["lr"]
        if hp.use_lr_scheduler:
            decay, floor = self._schedule(step)
            lr = torch.maximum(lr * decay, torch.clamp(lr, max=floor))
        wd, l1 = t["wd"], t["l1"]
        if hp.n_outputs > 1:
            lr, wd, l1 = (v.repeat_interleave(hp.n_outputs) for v in (lr, wd, l1))
        bias_lr = lr * (1.0 if hp.bias_lr_mult == "auto" else hp.bias_lr_mult)
        bias_wd = wd * (0.0 if hp.bias_wd_mult == "auto" else hp.bias_wd_mult)
        return lr, wd, l1, bias_lr, bias_wd

    def _step(self, state: State, x: torch.Tensor | CSR, grad: torch.Tensor) -> None:
        t = state.tensors
        lr, wd, l1, bias_lr, bias_wd = self._settings(state, state.meta["step"])
        cfg = self.optim
        names = moment_names(cfg.kind)
        weight = t["weight"]
        bufs = {b: t[f"weight.{b}"] for b in names}
        if isinstance(x, CSR):
            # Lazy update: only the rows this batch touches (their gradient summed per row).
            rows, inverse = x.unique_indices()
            contrib = grad.index_select(0, x.row_ids()) * x.values.view(-1, 1)
            g_rows = torch.zeros(rows.numel(), grad.shape[1], device=grad.device)
            g_rows.index_add_(0, inverse, contrib)
            step(cfg, weight, g_rows, bufs, lr, state.meta["step"], rows=rows, l1=l1, wd=wd)
        else:
            g_w = torch.mm(x.t(), grad)
            step(cfg, weight, g_w, bufs, lr, state.meta["step"], l1=l1, wd=wd)
        if self.hp.use_bias:
            g_b = grad.sum(0) + t["bias"] * bias_wd
            bufs = {b: t[f"bias.{b}"] for b in names}
            step(cfg, t["bias"], g_b, bufs, bias_lr, state.meta["step"])

    def _adopt(self, state: State) -> None:
        """Continue ``state``: learning rate, wd and l1 given now replace the candidates'."""
        hp = self.hp
        for name, value in (("lr", hp.learning_rate), ("wd", hp.wd), ("l1", hp.l1)):
            if value != "auto":
                state.tensors[name].fill_(float(value))

    def _merge(self, a: State, b: State) -> State:
        out = merge_states(a, b, moment_names(self.optim.kind))
        merge_stores(out, a, b)
        return out

    def _finalize(self, state: State, **post_training: Any) -> LinearLearnerModel:
        hp = parse_hyperparameters(
            LinearLearnerHyperparameters,
            {**self.hp.as_dict(), **{k: v for k, v in post_training.items() if k != "candidate"}},
            algorithm=self.name,
        )
        t = state.tensors
        filled = int(state.meta["calib_filled"])
        m, c = hp.resolved_num_models, hp.n_outputs
        raw = t["calib_scores"][:filled].cpu()
        raw = raw.view(filled, m, c) if c > 1 else raw
        selection = select(
            raw,
            t["calib_labels"][:filled].cpu(),
            predictor_type=hp.predictor_type,
            loss=hp.resolved_loss,
            loss_params=self.loss_params,
            criterion=hp.binary_classifier_model_selection_criteria,
            beta=hp.f_beta,
            target_precision=hp.target_precision,
            target_recall=hp.target_recall,
        )
        chosen = selection.model
        if "candidate" in post_training:
            chosen = int(post_training["candidate"])
            if not 0 <= chosen < m:
                raise ConfigError(f"candidate must be in 0..{m - 1}, got {chosen}")
        weight, bias = to_raw_space(state, chosen, c)
        lr, wd, l1 = (t[k].cpu().tolist() for k in ("lr", "wd", "l1"))
        meta = {
            "n_features": state.n_features,
            "predictor_type": hp.predictor_type,
            "loss": hp.resolved_loss,
            "num_classes": c if c > 1 else None,
            "threshold": selection.threshold,
            "candidate": chosen,
            "learning_rate": lr[chosen],
            "wd": wd[chosen],
            "l1": l1[chosen],
            "selection": {
                "criterion": selection.criterion,
                "value": selection.value,
                "rows": filled,
                "source": state.meta["calib_source"],
                "candidates": [
                    {"learning_rate": lr[i], "wd": wd[i], "l1": l1[i], "value": v}
                    for i, v in enumerate(selection.values)
                ],
            },
        }
        return LinearLearnerModel({"weight": weight, "bias": bias}, meta)

    # -- trainer hooks --------------------------------------------------------------------------

    def _scores(self, state: State, batch: Batch) -> torch.Tensor:
        """Every candidate's raw score of every row (normalised label space)."""
        t = state.tensors
        if isinstance(batch.features, CSR) and state.device.type == "cpu":
            return sparse_scores(t, batch.features, moment_names(self.optim.kind))
        x = scale_features(batch.features, t["x_shift"], t["x_scale"])
        return linear_scores(x, t["weight"], t["bias"])

    def candidate_losses(self, state: State, batches: Iterable[Batch]) -> torch.Tensor:
        """Mean loss of every candidate on ``batches`` (training loss, normalised space)."""
        hp = self.hp
        t = state.tensors
        total = torch.zeros(hp.resolved_num_models, dtype=torch.float64)
        rows = 0
        for batch in batches:
            if batch.n_rows == 0 or batch.labels is None:
                continue
            s = self._scores(state, batch)
            y = batch.labels
            if hp.predictor_type == "regressor":
                y = (y - t["y_shift"]) / t["y_scale"]
            shaped = s.view(batch.n_rows, hp.resolved_num_models, -1) if hp.n_outputs > 1 else s
            loss, _ = loss_and_grad(hp.resolved_loss, shaped, y, self.loss_params)
            total += loss.double().sum(0).cpu()
            rows += batch.n_rows
        return total / max(rows, 1)

    def end_epoch(self, state: State, validation: BatchStream | None) -> bool:
        hp = self.hp
        self._end_read(state)
        if validation is not None:
            losses = self.candidate_losses(state, validation())
        else:
            losses = state.tensors["epoch_loss"].cpu() / max(state.meta["epoch_rows"], 1)
        state.tensors["epoch_loss"].zero_()
        state.meta["epoch_rows"] = 0
        current = float(losses.min())
        state.meta["loss_history"].append(current)
        best = state.meta["best_loss"]
        if best is None or current < best - hp.early_stopping_tolerance * abs(best):
            state.meta["best_loss"] = current
            state.meta["bad_epochs"] = 0
        else:
            state.meta["bad_epochs"] += 1
        return bool(state.meta["bad_epochs"] >= hp.early_stopping_patience)

    def calibrate(self, state: State, batches: Iterable[Batch]) -> None:
        """Reservoir-sample held-out rows' scores of every candidate (replaces training rows)."""
        sample_held_out_scores(state, self._held_out_scores(state, batches))

    def _held_out_scores(
        self, state: State, batches: Iterable[Batch]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every candidate's scores of ``batches``' rows (a regressor's in the labels' units),
        with their labels."""
        t = state.tensors
        for batch in batches:
            if batch.n_rows == 0 or batch.labels is None:
                continue
            s = self._scores(state, batch)
            if self.hp.predictor_type == "regressor":
                s = s * t["y_scale"] + t["y_shift"]
            yield s, batch.labels

    def evaluator(self, model: Any) -> LinearLearnerEvaluator:
        assert isinstance(model, LinearLearnerModel)
        hp = self.hp
        return LinearLearnerEvaluator(model, self.loss_params, hp.f_beta, hp.accuracy_top_k)
