"""Feature and label scaling, class weights, and the conversions that merging and
finalising need between a state's normalised space and raw features.

Dense features are centred and scaled to unit variance. Sparse rows are only scaled, all by one
factor that gives them unit root-mean-square norm, so that zeros stay zero and rare features are
not blown up.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from streamfit.algorithms.linear_learner.hyperparameters import LinearLearnerHyperparameters
from streamfit.algorithms.linear_learner.selection import merge_held_out_scores
from streamfit.core.batch import CSR, Batch, Features
from streamfit.core.state import State

__all__ = ["class_weights", "fit_scaler", "merge_states", "scale_features", "to_raw_space"]


def scale_features(x: Features, shift: torch.Tensor, scale: torch.Tensor) -> Features:
    if isinstance(x, CSR):
        return CSR(x.indptr, x.indices, x.values / scale[x.indices], x.n_cols)
    return (x - shift) / scale


def fit_scaler(
    state: State, batches: Sequence[Batch], normalize_data: bool, normalize_label: bool
) -> None:
    """Set ``x_shift``/``x_scale`` (and ``y_shift``/``y_scale``) from ``batches``."""
    t = state.tensors
    device = t["weight"].device
    n = sum(b.n_rows for b in batches)
    state.meta["scaler_rows"] = n
    if normalize_data and n:
        if batches[0].is_sparse:
            # One scale for all features (the root mean square row norm): per-feature scaling
            # of rare one-hot features multiplies them by hundreds, and every optimiser step
            # on them overshoots.
            sq = sum(
                float((b.features.values.double() ** 2).sum())
                for b in batches
                if isinstance(b.features, CSR)
            )
            rms = (sq / n) ** 0.5
            t["x_scale"] = torch.full_like(t["x_scale"], rms if rms > 0 else 1.0)
        else:
            x = torch.cat([b.dense_features().to(device) for b in batches]).double()
            mean = x.mean(0)
            std = x.std(0, correction=0)
            t["x_shift"] = mean.float()
            t["x_scale"] = torch.where(std > 1e-12, std, 1.0).float()
    if normalize_label and n:
        y = torch.cat([b.labels.to(device) for b in batches if b.labels is not None]).double()
        std = y.std(correction=0)
        t["y_shift"] = y.mean().view(1).float()
        t["y_scale"] = torch.where(std > 1e-12, std, 1.0).view(1).float()


def class_weights(hp: LinearLearnerHyperparameters, labels: torch.Tensor) -> torch.Tensor:
    """Per-class loss weights (binary: ``positive_example_weight_mult``)."""
    if hp.predictor_type == "binary_classifier":
        mult = hp.positive_example_weight_mult
        if mult in ("balanced", "auto"):
            pos = float((labels > 0.5).sum())
            neg = float(labels.numel()) - pos
            mult = neg / pos if pos > 0 else 1.0
        return torch.tensor([1.0, float(mult)])
    if hp.predictor_type == "multiclass_classifier" and hp.balance_multiclass_weights:
        counts = torch.bincount(labels.long().cpu(), minlength=hp.n_outputs).float()
        present = counts > 0
        w = torch.where(present, counts.sum() / (present.sum() * counts.clamp_min(1)), 1.0)
        return w
    return torch.ones(max(hp.n_outputs, 2))


def to_raw_space(state: State, model: int, outputs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate ``model``'s weight and bias over raw features (and raw labels)."""
    t = state.tensors
    cols = slice(model * outputs, (model + 1) * outputs)
    w = t["weight"][:, cols].double()
    b = t["bias"][cols].double()
    scale = t["x_scale"].double().view(-1, 1)
    shift = t["x_shift"].double()
    w_raw = w / scale
    b_raw = b - shift @ w_raw
    y_scale, y_shift = t["y_scale"].double(), t["y_shift"].double()
    w_raw = w_raw * y_scale
    b_raw = b_raw * y_scale + y_shift
    return w_raw.float(), b_raw.float()


def _reexpress(
    state: State,
    shift: torch.Tensor,
    scale: torch.Tensor,
    y_shift: torch.Tensor,
    y_scale: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All candidates' weight and bias in another normalised space (same function)."""
    t = state.tensors
    w = t["weight"].double()
    b = t["bias"].double()
    # raw:  f(x) = ys * (w . (x - sh) / sc + b) + ym
    w_raw = w / t["x_scale"].double().view(-1, 1)
    b_raw = b - t["x_shift"].double() @ w_raw
    w_raw, b_raw = (
        w_raw * t["y_scale"].double(),
        b_raw * t["y_scale"].double() + t["y_shift"].double(),
    )
    # and back into the target space
    w_new = w_raw * scale.double().view(-1, 1) / y_scale.double()
    b_new = (b_raw + shift.double() @ (w_raw) - y_shift.double()) / y_scale.double()
    return w_new, b_new


def merge_states(a: State, b: State, moments: Sequence[str]) -> State:
    """Average two states' parameters (weighted by rows seen) in a pooled normalised space.

    Scaler statistics are pooled exactly; optimiser moments are averaged as they are (an
    approximation, like the parameter average itself); held-out score reservoirs are combined
    half and half, and ``calibrate`` should be run again before relying on them.
    """
    na = float(a.meta.get("rows", 0)) or 1.0
    nb = float(b.meta.get("rows", 0)) or 1.0
    wa, wb = na / (na + nb), nb / (na + nb)
    out = a.clone()
    ta, tb, to = a.tensors, b.tensors, out.tensors
    ra, rb = float(a.meta.get("scaler_rows", 0)), float(b.meta.get("scaler_rows", 0))
    pa, pb = (ra / (ra + rb), rb / (ra + rb)) if ra + rb > 0 else (0.5, 0.5)

    def pool(shift: str, scale: str, centred: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ma, mb = ta[shift].double(), tb[shift].double()
        va, vb = ta[scale].double() ** 2, tb[scale].double() ** 2
        mean = pa * ma + pb * mb
        var = pa * (va + ma**2) + pb * (vb + mb**2) - mean**2 if centred else pa * va + pb * vb
        return mean.float(), var.clamp_min(1e-24).sqrt().float()

    centred = bool((ta["x_shift"] != 0).any() or (tb["x_shift"] != 0).any())
    shift, scale = pool("x_shift", "x_scale", centred)
    y_shift, y_scale = pool("y_shift", "y_scale", True)
    w1, b1 = _reexpress(a, shift, scale, y_shift, y_scale)
    w2, b2 = _reexpress(b, shift, scale, y_shift, y_scale)
    to["weight"] = (wa * w1 + wb * w2).float()
    to["bias"] = (wa * b1 + wb * b2).float()
    to["x_shift"], to["x_scale"], to["y_shift"], to["y_scale"] = shift, scale, y_shift, y_scale
    for p in ("weight", "bias"):
        for m in moments:
            key = f"{p}.{m}"
            to[key] = wa * ta[key] + wb * tb[key]
    to["class_weight"] = pa * ta["class_weight"] + pb * tb["class_weight"]
    to["epoch_loss"] = ta["epoch_loss"] + tb["epoch_loss"]
    merge_held_out_scores(out, a, b)
    out.meta.update(
        prepared=bool(a.meta["prepared"] or b.meta["prepared"]),
        step=max(int(a.meta["step"]), int(b.meta["step"])),
        epoch_rows=int(a.meta["epoch_rows"]) + int(b.meta["epoch_rows"]),
        rows=int(a.meta.get("rows", 0)) + int(b.meta.get("rows", 0)),
        scaler_rows=int(ra + rb),
    )
    return out
