"""Factorization Machines' metrics on labelled rows, under SageMaker's names."""

from __future__ import annotations

from streamfit.algorithms.factorization_machines.model import FactorizationMachinesModel
from streamfit.core.batch import Batch
from streamfit.metrics import BinaryMetrics, RegressionMetrics

__all__ = ["FactorizationMachinesEvaluator"]


class FactorizationMachinesEvaluator:
    """Regressor: ``rmse`` (and ``mse``, ``absolute_loss``). Binary classifier:
    ``binary_classification_accuracy``, ``binary_classification_cross_entropy``,
    ``binary_f_beta``, ``precision``, ``recall`` and ``roc_auc_score``."""

    def __init__(self, model: FactorizationMachinesModel) -> None:
        self.model = model
        self.acc: BinaryMetrics | RegressionMetrics = (
            RegressionMetrics() if model.predictor_type == "regressor" else BinaryMetrics()
        )

    def update(self, batch: Batch) -> None:
        if batch.labels is None:
            return
        score = self.model.predict(batch.features)["score"]
        self.acc.update(score, batch.labels.to(score.device))

    def result(self) -> dict[str, float]:
        return self.acc.result()
