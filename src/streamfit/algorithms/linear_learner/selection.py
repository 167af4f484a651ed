"""Choosing the best candidate model and its decision threshold from held-out scores.

All candidates are scored at once: sorting each column of the ``(R, M)`` score matrix gives,
at every cut point, the confusion counts of every candidate, from which each criterion and
its best threshold follow without a Python loop over models or thresholds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from streamfit.algorithms.linear_learner.losses import LossParams, loss_and_grad
from streamfit.core.state import State
from streamfit.errors import ConfigError

__all__ = [
    "HOLD_OUT",
    "SELECTION_SETTINGS",
    "Selection",
    "held_out",
    "merge_held_out_scores",
    "remember_scores",
    "reservoir_slots",
    "sample_held_out_scores",
    "select",
]

#: The post-training hyperparameters of a choice among candidates (and its threshold).
SELECTION_SETTINGS = frozenset(
    {
        "binary_classifier_model_selection_criteria",
        "f_beta",
        "target_precision",
        "target_recall",
        "candidate",
    }
)
#: Where training rows are held out to choose a candidate (rows never trained on), 1 in this
#: many is.
HOLD_OUT = 16

BINARY_CRITERIA = (
    "accuracy",
    "f_beta",
    "precision_at_target_recall",
    "recall_at_target_precision",
    "loss_function",
)


@dataclass(frozen=True)
class Selection:
    model: int
    threshold: float
    criterion: str
    value: float  # the criterion's value for the chosen model (higher is better; losses negated)
    values: list[float]  # the criterion's value for every candidate


def remember_scores(
    state: State, scores: torch.Tensor, labels: torch.Tensor, *, regressor: bool
) -> None:
    """Keep a batch's pre-update scores (every candidate's) as the latest held-out rows of
    the state's ring of calibration scores (progressive validation), unless ``calibrate``
    filled it from validation rows; a regressor's scores in the labels' units."""
    if state.meta["calib_source"] != "train":
        return
    t = state.tensors
    raw = scores.detach()
    if regressor:
        raw = raw * t["y_scale"] + t["y_shift"]
    r = t["calib_scores"].shape[0]
    n = raw.shape[0]
    if n > r:
        raw, labels, n = raw[-r:], labels[-r:], r
    pos = state.meta["calib_next"]
    idx = (torch.arange(n, device=raw.device) + pos) % r
    t["calib_scores"].index_copy_(0, idx, raw)
    t["calib_labels"].index_copy_(0, idx, labels.to(raw.dtype))
    state.meta["calib_next"] = (pos + n) % r
    state.meta["calib_filled"] = min(r, state.meta["calib_filled"] + n)
    state.meta["calib_seen"] += n


def held_out(first: int, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Which of the rows ``first .. first + n - 1`` are held out (1 in :data:`HOLD_OUT`): the
    top bits of a multiplicative hash of each row's number, so that no stride in the data
    lines up with them, and the same rows whoever counts them.

    >>> held_out(0, 32).nonzero().squeeze(1).tolist()
    [0, 13]
    >>> torch.equal(held_out(1000, 500), held_out(0, 1500)[1000:])
    True
    """
    number = torch.arange(first, first + n, dtype=torch.int64, device=device)
    return ((number * 0x9E3779B1) & 0xFFFFFFFF) < (1 << 32) // HOLD_OUT


def merge_held_out_scores(out: State, a: State, b: State) -> None:
    """``out``'s held-out scores (``out`` a copy of ``a``): half each of ``a``'s and ``b``'s
    (all of one if the other has none); ``calibrate`` again to rely on them."""
    tb, to = b.tensors, out.tensors
    r = to["calib_scores"].shape[0]
    fa, fb = int(a.meta["calib_filled"]), int(b.meta["calib_filled"])
    take_b = min(fb, r // 2) if fa else min(fb, r)
    take_a = min(fa, r - take_b)
    for key in ("calib_scores", "calib_labels"):
        to[key][:take_a] = a.tensors[key][:take_a].to(to[key].device)
        to[key][take_a : take_a + take_b] = tb[key][:take_b].to(to[key].device)
    out.meta.update(
        calib_filled=take_a + take_b,
        calib_seen=int(a.meta["calib_seen"]) + int(b.meta["calib_seen"]),
        calib_next=(take_a + take_b) % r,
    )


def sample_held_out_scores(
    state: State,
    scored: Iterable[tuple[torch.Tensor, torch.Tensor]],
    source: str = "validation",
) -> None:
    """Replace the held-out scores with a uniform sample of ``scored``'s rows (every
    candidate's scores and the label, a batch at a time), taken as they come: a channel of
    any length in the ring's fixed memory."""
    t = state.tensors
    r = t["calib_scores"].shape[0]
    seen = 0
    state.meta["calib_source"] = source
    for scores, labels in scored:
        n = labels.shape[0]
        slot = reservoir_slots(seen, n, r, state.generator)
        keep = slot < r
        slot = slot[keep].to(scores.device)
        t["calib_scores"].index_copy_(0, slot, scores[keep.to(scores.device)])
        t["calib_labels"].index_copy_(0, slot, labels[keep.to(scores.device)].float())
        seen += n
    state.meta.update(calib_filled=min(seen, r), calib_seen=seen, calib_next=0)


def reservoir_slots(seen: int, n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Where rows ``seen .. seen + n`` of a stream go in a reservoir of ``size`` (a slot of
    ``size`` or more: not kept), so that the reservoir is a uniform sample of all rows.

    >>> reservoir_slots(0, 3, 5, torch.Generator()).tolist()
    [0, 1, 2]
    """
    index = torch.arange(seen, seen + n)
    full = index >= size
    if not bool(full.any()):
        return index
    draw = (torch.rand(n, generator=generator) * (index + 1)).long()
    return torch.where(full, draw, index)


def _output_scores(raw: torch.Tensor, loss: str) -> torch.Tensor:
    return torch.sigmoid(raw) if loss == "logistic" else raw


def _binary(
    raw: torch.Tensor,
    labels: torch.Tensor,
    loss: str,
    criterion: str,
    beta: float,
    target_precision: float,
    target_recall: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per candidate: the criterion's best value and the threshold that reaches it."""
    s = _output_scores(raw.double(), loss)
    r, _ = s.shape
    y = labels.double().view(-1, 1) > 0.5
    s_sorted, order = torch.sort(s, dim=0, descending=True)
    ys = y.expand_as(s).gather(0, order).double()
    zero = torch.zeros(1, s.shape[1], dtype=torch.float64)
    tp = torch.cat([zero, torch.cumsum(ys, 0)])  # cut k: the top k rows are positive
    fp = torch.cat([zero, torch.cumsum(1 - ys, 0)])
    n_pos = tp[-1:].clone()
    n_neg = fp[-1:].clone()
    fn, tn = n_pos - tp, n_neg - fp
    # A cut between equal scores cannot be realised by a threshold.
    valid = torch.ones_like(tp, dtype=torch.bool)
    valid[1:-1] = s_sorted[:-1] > s_sorted[1:]
    precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp_min(1), 1.0)
    recall = tp / n_pos.clamp_min(1)
    if criterion == "accuracy":
        value = (tp + tn) / r
    elif criterion == "f_beta":
        b2 = beta * beta
        value = (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp).clamp_min(1e-12)
    elif criterion == "precision_at_target_recall":
        value = torch.where(recall >= target_recall, precision, -torch.inf)
    else:  # recall_at_target_precision
        value = torch.where((precision >= target_precision) & (tp > 0), recall, -torch.inf)
    value = torch.where(valid, value, -torch.inf)
    best_value, best_k = value.max(0)
    # Threshold halfway between the last row predicted positive and the first negative one.
    above = torch.cat([s_sorted[:1] + 1.0, s_sorted])  # score of row k-1 (k=0: above all)
    below = torch.cat([s_sorted, s_sorted[-1:] - 1.0])
    idx = best_k.view(1, -1)
    threshold = 0.5 * (above.gather(0, idx) + below.gather(0, idx)).view(-1)
    if loss == "logistic":
        threshold = threshold.clamp(0.0, 1.0)
    return best_value, threshold


def _binary_blocks(
    raw: torch.Tensor,
    labels: torch.Tensor,
    loss: str,
    criterion: str,
    beta: float,
    target_precision: float,
    target_recall: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_binary` over blocks of candidates, so that its temporaries (a dozen
    ``(R, block)`` float64 matrices) stay near 8 MB each whatever ``num_models``."""
    block = max(1, (1 << 20) // max(raw.shape[0], 1))
    parts = [
        _binary(
            raw[:, i : i + block], labels, loss, criterion, beta, target_precision, target_recall
        )
        for i in range(0, raw.shape[1], block)
    ]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def select(
    raw: torch.Tensor,
    labels: torch.Tensor,
    *,
    predictor_type: str,
    loss: str,
    loss_params: LossParams,
    criterion: str,
    beta: float = 1.0,
    target_precision: float = 0.8,
    target_recall: float = 0.8,
) -> Selection:
    """The best of ``raw.shape[1]`` candidates on held-out rows (raw scores per candidate)."""
    if raw.shape[0] == 0:
        return Selection(0, _default_threshold(predictor_type, loss), criterion, float("nan"), [])
    if predictor_type == "binary_classifier" and criterion != "loss_function":
        values, thresholds = _binary_blocks(
            raw, labels, loss, criterion, beta, target_precision, target_recall
        )
        if not torch.isfinite(values).any():  # no candidate reaches the target: say so
            values, thresholds = _binary_blocks(raw, labels, loss, "accuracy", beta, 0, 0)
            criterion = "accuracy"
        best = int(values.argmax())
        return Selection(
            best, float(thresholds[best]), criterion, float(values[best]), values.tolist()
        )
    if predictor_type == "multiclass_classifier":
        if criterion not in ("accuracy", "loss_function"):
            raise ConfigError(
                f"binary_classifier_model_selection_criteria={criterion} applies to binary "
                "classifiers; multiclass models are chosen by accuracy or loss_function"
            )
        if criterion == "accuracy":
            values = (raw.argmax(-1) == labels.long().view(-1, 1)).double().mean(0)
            best = int(values.argmax())
            return Selection(best, 0.0, criterion, float(values[best]), values.tolist())
    losses, _ = loss_and_grad(loss, raw, labels, loss_params)
    values = -losses.double().mean(0)
    best = int(values.argmax())
    return Selection(
        best,
        _default_threshold(predictor_type, loss),
        "loss_function",
        float(values[best]),
        values.tolist(),
    )


def _default_threshold(predictor_type: str, loss: str) -> float:
    if predictor_type != "binary_classifier":
        return 0.0
    return 0.5 if loss == "logistic" else 0.0
