"""Linear Learner's metrics on labelled rows, under SageMaker's names."""

from __future__ import annotations

from streamfit.algorithms.linear_learner.losses import LossParams, loss_and_grad
from streamfit.algorithms.linear_learner.model import LinearLearnerModel
from streamfit.core.batch import Batch
from streamfit.metrics import BinaryMetrics, MulticlassMetrics, RegressionMetrics

__all__ = ["LinearLearnerEvaluator"]


class LinearLearnerEvaluator:
    """``objective_loss`` (the model's own loss) and the predictor type's metrics."""

    def __init__(
        self, model: LinearLearnerModel, loss_params: LossParams, f_beta: float, top_k: int
    ) -> None:
        self.model = model
        self.loss_params = loss_params
        kind = model.predictor_type
        self.acc: BinaryMetrics | MulticlassMetrics | RegressionMetrics
        if kind == "binary_classifier":
            self.acc = BinaryMetrics(model.threshold, f_beta, model.meta["loss"] == "logistic")
        elif kind == "multiclass_classifier":
            self.acc = MulticlassMetrics(int(model.tensors["bias"].numel()), top_k, f_beta)
        else:
            self.acc = RegressionMetrics()
        self.loss_sum = 0.0
        self.rows = 0

    def update(self, batch: Batch) -> None:
        if batch.labels is None:
            return
        model = self.model
        raw = model.raw_scores(batch.features)
        labels = batch.labels.to(raw.device)
        multiclass = model.predictor_type == "multiclass_classifier"
        shaped = raw.view(batch.n_rows, 1, -1) if multiclass else raw
        loss, _ = loss_and_grad(model.meta["loss"], shaped, labels, self.loss_params)
        self.loss_sum += float(loss.double().sum())
        self.rows += batch.n_rows
        self.acc.update(model.predict(batch.features)["score"], labels)

    def result(self) -> dict[str, float]:
        if self.rows == 0:
            return {}
        return {"objective_loss": self.loss_sum / self.rows, **self.acc.result()}
