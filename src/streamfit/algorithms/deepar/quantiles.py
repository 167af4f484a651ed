"""Quantiles of forecast sample paths, as GluonTS takes them (what SageMaker answers)."""

from __future__ import annotations

import torch

__all__ = ["sample_quantiles"]


def sample_quantiles(samples: torch.Tensor, quantiles: list[float]) -> torch.Tensor:
    """Quantiles of sample paths ``(n, samples, P)`` as GluonTS's ``SampleForecast`` takes
    them, the nearest rank ``sorted[round((S - 1) q)]``: ``(quantiles, n, P)``.

    >>> paths = torch.arange(5.0).reshape(1, 5, 1)
    >>> sample_quantiles(paths, [0.1, 0.5, 0.9])[:, 0, 0].tolist()
    [0.0, 2.0, 4.0]
    """
    ordered = samples.sort(dim=1).values
    last = samples.shape[1] - 1
    ranks = [round(last * q) for q in quantiles]
    return ordered[:, ranks].permute(1, 0, 2)
