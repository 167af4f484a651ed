"""The K-Means model: k centres; answers the closest cluster and the distance to it."""

from __future__ import annotations

from typing import Any

import torch

from streamfit.algorithms.kmeans.distance import nearest
from streamfit.core.batch import Features
from streamfit.core.model import Model

__all__ = ["KMeansModel"]


class KMeansModel(Model):
    """Predicts ``closest_cluster`` and ``distance_to_cluster`` (Euclidean) as SageMaker's
    K-Means does. Tensors: ``centers`` (k, d), float32.

    >>> model = KMeansModel({"centers": torch.tensor([[0.0, 0.0], [3.0, 4.0]])}, {})
    >>> for answer in model.records(model.predict(torch.tensor([[3.0, 0.0], [3.0, 5.0]]))):
    ...     print(answer)
    {'closest_cluster': 0.0, 'distance_to_cluster': 3.0}
    {'closest_cluster': 1.0, 'distance_to_cluster': 1.0}
    """

    algorithm = "kmeans"

    @property
    def centers(self) -> torch.Tensor:
        return self.tensors["centers"]

    @property
    def k(self) -> int:
        return int(self.centers.shape[0])

    def assign(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """The closest centre of each row and the squared distance to it."""
        features = features.to(self.device) if features.device != self.device else features
        return nearest(features, self.centers)

    def predict(self, features: Features) -> dict[str, torch.Tensor]:
        idx, d2 = self.assign(features)
        return {"closest_cluster": idx, "distance_to_cluster": d2.sqrt()}

    def records(self, predictions: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        cluster = predictions["closest_cluster"].detach().cpu().double().tolist()
        distance = predictions["distance_to_cluster"].detach().cpu().double().tolist()
        return [
            {"closest_cluster": c, "distance_to_cluster": d}
            for c, d in zip(cluster, distance, strict=True)
        ]
