"""Forecast accuracy as GluonTS's ``Evaluator`` defines it, accumulated over batches of test
windows (each series' last ``prediction_length`` points held out, SageMaker's convention).

- ``wQuantileLoss[q]``: ``2 sum |(y - y_q) (1{y <= y_q} - q)| / sum |y|`` over every series
  and step; ``mean_wQuantileLoss`` its mean over the quantiles;
- ``RMSE``: the root of the mean squared error of the mean forecast over all points;
- ``MASE``: per series, the mean absolute error of the median forecast over the series'
  seasonal error (the mean absolute difference of its past from one season before), then
  the mean over series;
- ``loss``: the mean negative log-likelihood of the observed test targets given the model's
  one-step-ahead distributions (teacher-forced): the validation loss that early stopping
  watches.

Missing test points (observed 0) count in none of them.

>>> y = torch.tensor([[1.0, 2.0]])
>>> quantile_losses(y, {0.5: torch.tensor([[1.0, 3.0]])}, torch.ones(1, 2))
{0.5: tensor(1.)}
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from streamfit.algorithms.deepar.quantiles import sample_quantiles
from streamfit.core.batch import Batch

if TYPE_CHECKING:
    from streamfit.algorithms.deepar.model import DeepARModel

__all__ = ["DeepAREvaluator", "quantile_losses"]


def quantile_losses(
    target: torch.Tensor, quantiles: dict[float, torch.Tensor], observed: torch.Tensor
) -> dict[float, torch.Tensor]:
    """Each quantile's summed loss ``2 |(y - y_q)(1{y <= y_q} - q)|`` over observed points."""
    out = {}
    for q, forecast in quantiles.items():
        below = (target <= forecast).to(target.dtype)
        out[q] = (2 * ((target - forecast) * (below - q)).abs() * observed).sum()
    return out


class DeepAREvaluator:
    """Accumulates the metrics of one model over batches of test windows."""

    def __init__(self, model: DeepARModel) -> None:
        self.model = model
        self.quantiles = [float(q) for q in model.meta["test_quantiles"]]
        self.losses = dict.fromkeys(self.quantiles, 0.0)
        self.absolute = self.squared = self.points = 0.0
        self.mase_sum = 0.0
        self.series = 0
        self.nll = self.nll_points = 0.0

    def update(self, batch: Batch) -> None:
        model = self.model
        windows = model.layout.unpack(batch.dense_features().to(model.device).float())
        samples = model.sample(windows, int(model.meta["num_eval_samples"]))
        target, observed = windows.future_target, windows.future_observed
        values = sample_quantiles(samples, self.quantiles)  # (quantiles, n, P)
        for q, loss in quantile_losses(
            target, {q: values[i] for i, q in enumerate(self.quantiles)}, observed
        ).items():
            self.losses[q] += float(loss)
        mean = samples.mean(1)
        self.absolute += float((target.abs() * observed).sum())
        self.squared += float(((target - mean) ** 2 * observed).sum())
        self.points += float(observed.sum())
        median = sample_quantiles(samples, [0.5])[0]
        seen = observed.sum(1)
        errors = ((target - median).abs() * observed).sum(1) / seen.clamp_min(1)
        seasonal = windows.extra
        valid = (seen > 0) & (seasonal > 0)
        self.mase_sum += float((errors[valid] / seasonal[valid]).sum())
        self.series += int(valid.sum())
        with torch.no_grad():
            total, count = model.network().loss(windows)
        self.nll += float(total)
        self.nll_points += float(count)

    def result(self) -> dict[str, float]:
        denominator = self.absolute if self.absolute > 0 else math.nan
        out = {f"wQuantileLoss[{q}]": loss / denominator for q, loss in self.losses.items()}
        out["mean_wQuantileLoss"] = sum(out.values()) / len(out)
        out["RMSE"] = math.sqrt(self.squared / self.points) if self.points else math.nan
        out["MASE"] = self.mase_sum / self.series if self.series else math.nan
        out["loss"] = self.nll / self.nll_points if self.nll_points else math.nan
        return out
