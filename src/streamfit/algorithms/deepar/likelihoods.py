"""DeepAR's likelihood heads: from the network's raw outputs at a step to a distribution of
the target there, in the series' own units (GluonTS's ``DistributionOutput``s).

Each head maps ``args`` raw numbers per step to its parameters (``domain_map``: positive ones
through softplus), and applies the series' scale (mean absolute value over the context) so
that the network works in scaled units: an affine map for the real-valued heads, the rate and
dispersion for the negative binomial (as GluonTS does), none for the beta (targets in (0, 1)).

>>> head = HEADS["student-T"]
>>> raw = torch.zeros(2, 3, head.args)
>>> dist = head.distribution(raw, scale=torch.tensor([[1.0], [10.0]]))
>>> dist.mean[:, 0].tolist()
[0.0, 0.0]
>>> head.loss(raw, torch.ones(2, 3), torch.ones(2, 1)).shape
torch.Size([2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import distributions as D

__all__ = ["HEADS", "Head", "Likelihood"]

Likelihood = str


def _positive(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x) + 1e-6


class Point(D.Distribution):
    """``deterministic-L1``: a point forecast; its "samples" are the point, its loss the
    absolute error in scaled units."""

    arg_constraints: dict[str, Any] = {}  # noqa: RUF012
    has_rsample = False

    def __init__(self, value: torch.Tensor, scale: torch.Tensor) -> None:
        self.value, self._scale = value, scale
        super().__init__(value.shape, validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.value

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        return self.value.expand(*sample_shape, *self.value.shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return -(value - self.value).abs() / self._scale


@dataclass(frozen=True)
class Head:
    """One likelihood: how many raw outputs a step, and the distribution they give."""

    name: str
    args: int

    def distribution(self, raw: torch.Tensor, scale: torch.Tensor) -> D.Distribution:
        """The distribution at each step; ``raw`` is ``(..., steps, args)``, ``scale``
        broadcasts against ``(..., steps)`` (``(n, 1)`` for ``n`` series)."""
        a = raw.unbind(-1)
        if self.name == "student-T":
            df = 2.0 + _positive(a[2])
            return D.StudentT(df, a[0] * scale, _positive(a[1]) * scale, validate_args=False)
        if self.name == "gaussian":
            return D.Normal(a[0] * scale, _positive(a[1]) * scale, validate_args=False)
        if self.name == "negative-binomial":
            # GluonTS: mean mu * scale, shape alpha / sqrt(scale); total_count 1 / alpha.
            mu = _positive(a[0]) * scale
            alpha = _positive(a[1]) / scale.sqrt()
            total = 1.0 / alpha
            return D.NegativeBinomial(total, logits=torch.log(mu * alpha), validate_args=False)
        if self.name == "beta":
            return D.Beta(_positive(a[0]), _positive(a[1]), validate_args=False)
        return Point(a[0] * scale, scale.expand_as(a[0]))

    def loss(self, raw: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood of ``target`` at each step (in the series' units, so
        that the loss is comparable across heads of a family only)."""
        value = target
        if self.name == "beta":
            value = target.clamp(1e-6, 1 - 1e-6)
        elif self.name == "negative-binomial":
            value = target.clamp_min(0).round()
        out: torch.Tensor = -self.distribution(raw, scale).log_prob(value)
        return out


HEADS: dict[str, Head] = {
    "student-T": Head("student-T", 3),
    "gaussian": Head("gaussian", 2),
    "negative-binomial": Head("negative-binomial", 2),
    "beta": Head("beta", 2),
    "deterministic-L1": Head("deterministic-L1", 1),
}
