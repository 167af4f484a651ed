"""Linear Learner's losses for the compiled sparse step: each row's loss and its gradient
for every column, as :func:`losses.loss_and_grad` gives them (which the tests compare).

>>> import numpy as np
>>> scores = np.array([[0.0, 2.0]], np.float32)
>>> grad, per_model = np.empty_like(scores), np.zeros(2)
>>> gradients(np.array([1.0], np.float32), np.ones(2, np.float32), np.float32(0),
...           np.float32(1), LOSS_CODES["logistic"], np.zeros(4, np.float32), 1, False,
...           scores, grad, per_model)
>>> [round(float(v), 4) for v in (*grad[0], *per_model)]
[-0.5, -0.1192, 0.6931, 0.1269]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from streamfit.algorithms.linear_learner.jit import jit

__all__ = ["LOSS_CODES", "SOFTMAX", "gradients"]

#: The losses the kernel knows, by the code it branches on.
LOSS_CODES = {
    name: code
    for code, name in enumerate(
        (
            "logistic",
            "hinge_loss",
            "squared_loss",
            "absolute_loss",
            "eps_insensitive_squared_loss",
            "eps_insensitive_absolute_loss",
            "quantile_loss",
            "huber_loss",
            "softmax_loss",
        )
    )
}
SOFTMAX = LOSS_CODES["softmax_loss"]


@jit
def _loss_grad(code: int, s: Any, y: Any, params: np.ndarray) -> tuple[Any, Any]:
    """One score's loss and its derivative, as :func:`losses.loss_and_grad` (not softmax)."""
    one, two, zero = np.float32(1.0), np.float32(2.0), np.float32(0.0)
    if code == 0:  # logistic: softplus(s) - y s, torch's softplus threshold of 20
        soft = s if s > 20 else np.float32(math.log1p(math.exp(s)))
        return soft - y * s, one / (one + np.float32(math.exp(-s))) - y
    if code == 1:  # hinge
        sign = two * y - one
        slack = params[0] - sign * s
        return max(slack, zero), -sign if slack > 0 else zero
    r = s - y
    sgn = one if r > 0 else (-one if r < 0 else zero)
    if code == 2:
        return r * r, two * r
    if code == 3:
        return abs(r), sgn
    if code == 4:
        excess = max(abs(r) - params[3], zero)
        return excess * excess, two * excess * sgn
    if code == 5:
        excess = abs(r) - params[3]
        return max(excess, zero), sgn if excess > 0 else zero
    if code == 6:
        q = params[1]
        return (-q * r if r < 0 else (one - q) * r), (one - q) - (one if r < 0 else zero)
    d = params[2]  # huber
    a = abs(r)
    loss = np.float32(0.5) * r * r if a <= d else d * (a - np.float32(0.5) * d)
    return loss, min(max(r, -d), d)


_LOG2E = np.float32(1.44269504088896341)
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)  # ln 2 = hi + lo
_SQRT2 = np.float32(1.41421356)


@jit
def _logistic(
    scores: Any, i: int, y: Any, row_w: Any, grad: Any, per_model: Any, poly: Any, powers: Any
) -> None:
    """Row ``i``'s logistic loss and gradient for every column, from one ``e = exp(-|s|)``:
    ``sigmoid(s)`` is ``1 / (1 + e)`` or ``e / (1 + e)``, ``softplus(s) = max(s, 0) +
    log(1 + e)``. Both are Cephes' single-precision polynomials written out (about 1 ulp),
    because numba calls libm once per element where these loops vectorise: a third of the
    step's time with 32 candidates, before. The first loop leaves ``e`` as a polynomial and
    the bits of a power of two (a float's exponent field), the second multiplies them."""
    k = scores.shape[1]
    one, half, zero = np.float32(1.0), np.float32(0.5), np.float32(0.0)
    for c in range(k):
        t = max(-abs(scores[i, c]), np.float32(-87.0))  # 2^-126 at least: a normal float
        q = np.floor(t * _LOG2E + half)
        r = t - q * _LN2_HI - q * _LN2_LO
        p = np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        poly[c] = p * r * r + r + one
        powers[c] = (np.int32(q) + 127) << 23
    scale = powers.view(np.float32)
    for c in range(k):
        s = scores[i, c]
        e = poly[c] * scale[c]
        z = one + e  # in [1, 2]: log(z) needs no exponent of its own
        big = z > _SQRT2
        z = z * half if big else z
        x = z - one
        w = np.float32(7.0376836292e-2) * x - np.float32(1.1514610310e-1)
        w = w * x + np.float32(1.1676998740e-1)
        w = w * x - np.float32(1.2420140846e-1)
        w = w * x + np.float32(1.4249322787e-1)
        w = w * x - np.float32(1.6668057665e-1)
        w = w * x + np.float32(2.0000714765e-1)
        w = w * x - np.float32(2.4999993993e-1)
        w = w * x + np.float32(3.3333331174e-1)
        xx = x * x
        log_z = x + (w * x * xx - half * xx)
        log_z = log_z + (_LN2_LO + _LN2_HI) * (one if big else zero)
        per_model[c] += max(s, zero) - y * s + log_z
        sigmoid = (one if s >= 0 else e) / (one + e)
        grad[i, c] = (sigmoid - y) * row_w


@jit
def gradients(
    labels: Any,
    class_weight: Any,
    y_shift: Any,
    y_scale: Any,
    code: int,
    params: Any,
    classes: int,
    regressor: bool,
    scores: Any,
    grad: Any,
    per_model: Any,
) -> None:
    """The loss's gradient per row and column, weighted and divided by the batch's rows as
    the reference does, and each model's summed loss."""
    n, k = scores.shape
    one = np.float32(1.0)
    nf = np.float32(n)
    poly = np.empty(k, np.float32)
    powers = np.empty(k, np.int32)
    for i in range(n):
        y = labels[i]
        if regressor:
            y = (y - y_shift) / y_scale
            row_w = one
        else:
            row_w = class_weight[int(y)] / nf
        if code == 0:
            _logistic(scores, i, y, row_w, grad, per_model, poly, powers)
        elif code == SOFTMAX:
            target = int(y)
            for m in range(k // classes):
                base = m * classes
                top = scores[i, base]
                for c in range(1, classes):
                    top = max(top, scores[i, base + c])
                total = np.float32(0.0)
                for c in range(classes):
                    total += np.float32(math.exp(scores[i, base + c] - top))
                lse = top + np.float32(math.log(total))
                per_model[m] += lse - scores[i, base + target]
                for c in range(classes):
                    p = np.float32(math.exp(scores[i, base + c] - lse))
                    grad[i, base + c] = (p - one if c == target else p) * row_w
        else:
            for m in range(k):
                loss, d = _loss_grad(code, scores[i, m], y, params)
                per_model[m] += loss
                grad[i, m] = d / nf if regressor else d * row_w
