"""The PCA model: a centre, principal axes, and what they explain."""

from __future__ import annotations

from typing import Any

import torch

from streamfit.algorithms.pca.moments import times
from streamfit.core.batch import CSR, Features
from streamfit.core.model import Model

__all__ = ["PCAModel"]


class PCAModel(Model):
    """Projects rows onto the principal axes: ``projection = (x - mean) @ components^T``.

    Tensors (float32; ``k`` components of ``d`` features):

    - ``mean`` (d): the point subtracted before projecting: the training mean, or zeros when
      ``subtract_mean`` was false;
    - ``components`` (k, d): orthonormal rows by decreasing variance, the largest-magnitude
      entry of each positive (scikit-learn's ``components_``);
    - ``singular_values`` (k): of the centred training matrix (scikit-learn's
      ``singular_values_``; uncentred with ``subtract_mean`` false), i.e. the square roots of
      the eigenvalues of the scatter matrix;
    - ``explained_variance`` (k): ``singular_values**2 / (n - 1)`` (scikit-learn's), or
      ``/ n`` uncentred (the mean square of the projections);
    - ``explained_variance_ratio`` (k): each component's share of the total variance.

    >>> m = PCAModel({"mean": torch.tensor([1.0, 1.0]),
    ...               "components": torch.tensor([[1.0, 0.0]])}, {"n_features": 2})
    >>> m.records(m.predict(torch.tensor([[3.0, 5.0]])))
    [{'projection': [2.0]}]
    """

    algorithm = "pca"

    def predict(self, features: Features) -> dict[str, torch.Tensor]:
        features = features.to(self.device) if features.device != self.device else features
        mean, components = self.tensors["mean"], self.tensors["components"]
        if isinstance(features, CSR):  # x C^T - mean C^T: the batch stays sparse
            axes = components.T.contiguous()
            return {"projection": times(features, axes) - mean @ axes}
        return {"projection": (features.to(mean.dtype) - mean) @ components.T}

    def records(self, predictions: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        return [{"projection": row} for row in predictions["projection"].detach().cpu().tolist()]
