"""K-Means metrics under SageMaker's names: ``msd`` (mean squared distance of a row to its
closest centre) and ``ssd`` (their sum).

>>> import torch
>>> from streamfit.core.batch import Batch
>>> acc = KMeansEvaluator(KMeansModel({"centers": torch.zeros(1, 2)}, {}), ["msd", "ssd"])
>>> acc.update(Batch(torch.tensor([[1.0, 0.0], [0.0, 3.0]])))
>>> acc.result()
{'msd': 5.0, 'ssd': 10.0}
"""

from __future__ import annotations

from collections.abc import Sequence

from streamfit.algorithms.kmeans.model import KMeansModel
from streamfit.core.batch import Batch

__all__ = ["KMeansEvaluator"]


class KMeansEvaluator:
    """Accumulates squared distances in float64, a batch at a time."""

    def __init__(self, model: KMeansModel, metrics: Sequence[str] = ("msd",)) -> None:
        self.model = model
        self.metrics = list(metrics)
        self.ssd = 0.0
        self.rows = 0

    def update(self, batch: Batch) -> None:
        if batch.n_rows == 0:
            return
        _, d2 = self.model.assign(batch.features)
        self.ssd += float(d2.double().sum())
        self.rows += batch.n_rows

    def result(self) -> dict[str, float]:
        if self.rows == 0:
            return {}
        values = {"msd": self.ssd / self.rows, "ssd": self.ssd}
        return {name: values[name] for name in self.metrics}
