"""PCA's metrics on held-out rows."""

from __future__ import annotations

import torch

from streamfit.algorithms.pca.model import PCAModel
from streamfit.algorithms.pca.moments import row_sq_norms, times
from streamfit.core.batch import CSR, Batch

__all__ = ["PCAEvaluator"]

_F64 = torch.float64


class PCAEvaluator:
    """How well the model's components describe held-out rows (``x`` around the model's
    ``mean``, projected ``p = (x - mean) C^T``, reconstructed ``mean + p C``):

    - ``reconstruction_mse``: mean squared error of the reconstruction per entry,
      ``sum ||x - x_hat||^2 / (rows * d)`` (lower is better);
    - ``explained_variance``: ``sum ||p||^2 / rows``, the variance along the components;
    - ``explained_variance_ratio``: ``sum ||p||^2 / sum ||x - mean||^2``.

    >>> m = PCAModel({"mean": torch.zeros(2), "components": torch.tensor([[1.0, 0.0]])}, {})
    >>> acc = PCAEvaluator(m)
    >>> acc.update(Batch(torch.tensor([[3.0, 1.0], [-3.0, -1.0]])))
    >>> acc.result()
    {'reconstruction_mse': 0.5, 'explained_variance': 9.0, 'explained_variance_ratio': 0.9}
    """

    def __init__(self, model: PCAModel) -> None:
        self.device = model.device
        self.mean = model.tensors["mean"].to(_F64)
        self.components = model.tensors["components"].to(_F64)
        self.axes = self.components.T.contiguous()
        self.offset = self.mean @ self.axes
        self.totals = torch.zeros(3, dtype=_F64, device=self.device)  # ||x-m||^2, ||p||^2, err
        self.rows = 0

    def update(self, batch: Batch) -> None:
        x = batch.features
        x = x.to(self.device) if x.device != self.device else x
        if isinstance(x, CSR):
            centred = row_sq_norms(x) - 2 * times(x, self.mean.unsqueeze(1))[:, 0]
            centred = centred + self.mean @ self.mean
            p = times(x, self.axes) - self.offset
            kept = (p * p).sum(1)
            error = (centred - kept).clamp(min=0)
        else:
            xm = x.to(_F64) - self.mean
            p = xm @ self.axes
            residual = xm - p @ self.components
            centred, kept, error = (xm * xm).sum(1), (p * p).sum(1), (residual * residual).sum(1)
        self.totals += torch.stack([centred.sum(), kept.sum(), error.sum()])
        self.rows += batch.n_rows

    def result(self) -> dict[str, float]:
        if self.rows == 0:
            return {}
        centred, kept, error = self.totals.tolist()
        d = self.mean.numel()
        return {
            "reconstruction_mse": error / (self.rows * d),
            "explained_variance": kept / self.rows,
            "explained_variance_ratio": kept / centred if centred > 0 else float("nan"),
        }
