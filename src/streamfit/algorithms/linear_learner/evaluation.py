"""Linear Learner's metrics on labelled rows, under SageMaker's names."""

from __future__ import annotations

from collections.abc import Iterable

from streamfit.algorithms.linear_learner.losses import LossParams, loss_and_grad
from streamfit.algorithms.linear_learner.model import LinearLearnerModel
from streamfit.core.batch import Batch
from streamfit.metrics import BinaryMetrics, MulticlassMetrics, RegressionMetrics

__all__ = ["evaluate_model"]


def evaluate_model(
    model: LinearLearnerModel,
    batches: Iterable[Batch],
    loss_params: LossParams,
    f_beta: float = 1.0,
    top_k: int = 3,
) -> dict[str, float]:
    """``objective_loss`` (the model's own loss) and the predictor type's metrics."""
    kind = model.predictor_type
    acc: BinaryMetrics | MulticlassMetrics | RegressionMetrics
    if kind == "binary_classifier":
        acc = BinaryMetrics(model.threshold, f_beta, model.meta["loss"] == "logistic")
    elif kind == "multiclass_classifier":
        acc = MulticlassMetrics(int(model.tensors["bias"].numel()), top_k, f_beta)
    else:
        acc = RegressionMetrics()
    loss_sum, rows = 0.0, 0
    for batch in batches:
        if batch.n_rows == 0 or batch.labels is None:
            continue
        raw = model.raw_scores(batch.features)
        labels = batch.labels.to(raw.device)
        shaped = raw.view(batch.n_rows, 1, -1) if kind == "multiclass_classifier" else raw
        loss, _ = loss_and_grad(model.meta["loss"], shaped, labels, loss_params)
        loss_sum += float(loss.double().sum())
        rows += batch.n_rows
        acc.update(model.predict(batch.features)["score"], labels)
    if rows == 0:
        return {}
    return {"objective_loss": loss_sum / rows, **acc.result()}
