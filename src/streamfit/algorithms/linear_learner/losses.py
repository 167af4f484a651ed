"""Linear Learner's losses: value and gradient with respect to the raw score, per row and
candidate model, in closed form (cheaper than autograd for a packed weight matrix; the tests
check each against autograd).

Scores are ``(n, M)`` for binary and regression and ``(n, M, C)`` for multiclass; labels are
``(n,)``: 0/1 for binary, class indices for multiclass, real values for regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LossParams", "loss_and_grad"]


@dataclass(frozen=True)
class LossParams:
    margin: float = 1.0
    quantile: float = 0.5
    huber_delta: float = 1.0
    loss_insensitivity: float = 0.01


def loss_and_grad(
    name: str, s: torch.Tensor, y: torch.Tensor, p: LossParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, dloss/ds)``: loss is ``(n, M)``, the gradient has the shape of ``s``."""
    if name == "softmax_loss":
        log_p = torch.log_softmax(s, dim=-1)
        idx = y.long().view(-1, 1, 1).expand(-1, s.shape[1], 1)
        loss = -log_p.gather(-1, idx).squeeze(-1)
        grad = log_p.exp()
        grad.scatter_add_(-1, idx, torch.full_like(idx, -1, dtype=s.dtype))
        return loss, grad
    yy = y.view(-1, 1).to(s.dtype)
    if name == "logistic":
        loss = F.softplus(s) - yy * s
        return loss, torch.sigmoid(s) - yy
    if name == "hinge_loss":
        sign = 2 * yy - 1
        slack = p.margin - sign * s
        return slack.clamp_min(0), torch.where(slack > 0, -sign, 0.0).expand_as(s)
    r = s - yy
    if name == "squared_loss":
        return r * r, 2 * r
    if name == "absolute_loss":
        return r.abs(), torch.sign(r)
    if name == "eps_insensitive_squared_loss":
        excess = (r.abs() - p.loss_insensitivity).clamp_min(0)
        return excess * excess, 2 * excess * torch.sign(r)
    if name == "eps_insensitive_absolute_loss":
        excess = r.abs() - p.loss_insensitivity
        return excess.clamp_min(0), torch.where(excess > 0, torch.sign(r), 0.0)
    if name == "quantile_loss":
        q = p.quantile
        # r = s - y: under-prediction (r < 0) costs q per unit, over-prediction 1 - q.
        under = (r < 0).to(r.dtype)
        return torch.where(r < 0, -q * r, (1 - q) * r), (1 - q) - under
    if name == "huber_loss":
        d = p.huber_delta
        a = r.abs()
        loss = torch.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d))
        return loss, r.clamp(-d, d)
    raise ValueError(f"unknown loss {name!r}")
