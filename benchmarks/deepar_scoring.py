"""How benchmarks/deepar.py scores every contender: GluonTS's ``Evaluator`` definitions
(gluonts/evaluation/metrics.py and _base.py, 0.17), written out so that every model is scored
by the same code on the same held-out points, whichever library made the forecast.

A forecast of ``n`` series ``H`` steps ahead is its quantiles at :data:`QUANTILES` and its mean.
Sample paths give quantiles by GluonTS's ``SampleForecast.quantile``, the nearest rank
``sorted[round((S - 1) q)]`` with no interpolation (:func:`nearest_rank`); a model that gives
quantiles (statsforecast's intervals) gives them directly. Then, over observed points only:

- ``wQuantileLoss[q] = sum_i,t 2 |(y - y_q)(1{y <= y_q} - q)| / sum_i,t |y|``, and
  ``mean_wQuantileLoss`` its mean over the quantiles;
- ``ND`` = ``wQuantileLoss[0.5]``: a point forecast scored as every quantile has mean wQL = ND;
- ``RMSE``: the root of the mean over series of each one's mean squared error of the mean;
- ``MASE``: per series, the mean absolute error of the median (the 0.5 quantile) over the
  series' seasonal error, ``mean |past[t] - past[t - m]|`` over all its history before the
  forecast (``m`` the season, 1 where the history is no longer than a season); the mean over
  series. A series with a seasonal error of 0 (a flat history) would make GluonTS's MASE
  infinite: it is left out here, and counted in ``MASE_skipped``, as streamfit's own
  ``test:MASE`` leaves it out.

>>> point = np.array([[2.0, 2.0]])  # one series, its last two points 1 and 3 held out
>>> f = Forecasts(np.repeat(point[:, None], len(QUANTILES), axis=1), point)
>>> s = score([np.array([1.0, 2.0, 1.0, 3.0])], f, season=1)
>>> round(s["ND"], 3), s["RMSE"], s["MASE"]
(0.5, 1.0, 1.0)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def nearest_rank(samples: np.ndarray, quantiles: Sequence[float] = QUANTILES) -> np.ndarray:
    """Quantiles of sample paths ``(n, S, H)`` as GluonTS takes them: ``(n, len(quantiles), H)``.

    >>> paths = np.arange(100.0).reshape(1, 100, 1)
    >>> nearest_rank(paths, [0.1, 0.5, 0.9])[0, :, 0].tolist()
    [10.0, 50.0, 89.0]
    """
    ordered = np.sort(samples, axis=1)
    ranks = [int(np.round((samples.shape[1] - 1) * q)) for q in quantiles]
    out: np.ndarray = ordered[:, ranks]
    return out


@dataclass(frozen=True)
class Forecasts:
    """``quantiles`` ``(n, len(QUANTILES), H)`` and ``mean`` ``(n, H)``."""

    quantiles: np.ndarray
    mean: np.ndarray

    @classmethod
    def from_samples(cls, samples: np.ndarray) -> Forecasts:
        """From sample paths ``(n, S, H)``."""
        samples = np.asarray(samples, dtype=np.float64)
        return cls(nearest_rank(samples), samples.mean(axis=1))

    @classmethod
    def from_quantiles(cls, quantiles: Mapping[float, np.ndarray], mean: np.ndarray) -> Forecasts:
        """From each quantile's ``(n, H)`` forecasts."""
        stacked = np.stack([np.asarray(quantiles[q], np.float64) for q in QUANTILES], axis=1)
        return cls(stacked, np.asarray(mean, np.float64))


def seasonal_error(past: np.ndarray, season: int) -> float:
    """GluonTS's ``calculate_seasonal_error``: ``mean |past[m:] - past[:-m]|``, with
    ``m = 1`` when the past is no longer than ``season``; missing values left out.

    >>> seasonal_error(np.array([1.0, 2.0, 4.0, 3.0]), 2), seasonal_error(np.array([1.0, 2.0]), 4)
    (2.0, 1.0)
    """
    m = season if season < len(past) else 1
    diff = np.abs(past[m:] - past[:-m])
    diff = diff[~np.isnan(diff)]
    return float(diff.mean()) if diff.size else float("nan")


def score(series: Sequence[np.ndarray], forecasts: Forecasts, season: int) -> dict[str, float]:
    """Score forecasts of the last ``H`` points of each of ``series`` (whole series: the
    history is everything before those points)."""
    h = forecasts.mean.shape[1]
    if len(series) != forecasts.mean.shape[0]:
        raise ValueError(f"{len(series)} series but {forecasts.mean.shape[0]} forecasts")
    y = np.stack([np.asarray(s[-h:], np.float64) for s in series])
    observed = ~np.isnan(y)
    y0 = np.where(observed, y, 0.0)
    denominator = float(np.abs(y0).sum())
    out: dict[str, float] = {}
    for j, q in enumerate(QUANTILES):
        f = forecasts.quantiles[:, j]
        loss = 2 * np.abs((f - y0) * ((y0 <= f) - q)) * observed
        out[f"wQuantileLoss[{q}]"] = float(loss.sum()) / denominator
    out["mean_wQuantileLoss"] = float(np.mean([out[f"wQuantileLoss[{q}]"] for q in QUANTILES]))
    out["ND"] = out["wQuantileLoss[0.5]"]
    seen = observed.sum(axis=1)
    squared = ((forecasts.mean - y0) ** 2 * observed).sum(axis=1)
    has = seen > 0
    out["RMSE"] = float(np.sqrt((squared[has] / seen[has]).mean()))
    median = forecasts.quantiles[:, QUANTILES.index(0.5)]
    errors = (np.abs(median - y0) * observed).sum(axis=1)
    mase, skipped = [], 0
    for i, s in enumerate(series):
        scale = seasonal_error(np.asarray(s[:-h], np.float64), season)
        if has[i] and scale > 0:
            mase.append(errors[i] / seen[i] / scale)
        else:
            skipped += 1
    out["MASE"] = float(np.mean(mase)) if mase else float("nan")
    out["MASE_skipped"] = float(skipped)
    return out


def read_answers(lines: Sequence[str]) -> Forecasts:
    """Forecasts from ``streamfit predict``'s answers, one JSON object a line: their
    ``samples``, else their ``mean`` and ``quantiles`` (0.1 to 0.9)."""
    answers = [json.loads(line) for line in lines if line.strip()]
    if answers and "samples" in answers[0]:
        return Forecasts.from_samples(np.array([a["samples"] for a in answers]))
    by_q = {q: np.array([a["quantiles"][str(q)] for a in answers]) for q in QUANTILES}
    return Forecasts.from_quantiles(by_q, np.array([a["mean"] for a in answers]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Score forecasts (streamfit predict's answers for the series of TEST less "
        "their last points) against TEST's last points, as benchmarks/deepar.py scores."
    )
    parser.add_argument("test", help="the whole series, SageMaker's JSON Lines")
    parser.add_argument("forecasts", help="one answer a line: samples, or mean and quantiles")
    parser.add_argument("--season", type=int, default=1, help="MASE's season (steps)")
    args = parser.parse_args()
    with open(args.test) as f:
        series = [
            np.array([np.nan if v in (None, "NaN") else v for v in json.loads(line)["target"]])
            for line in f
            if line.strip()
        ]
    with open(args.forecasts) as f:
        forecasts = read_answers(f.read().splitlines())
    print(json.dumps(score(series, forecasts, args.season), indent=1))


if __name__ == "__main__":
    main()
