"""The Linear Learner model: raw-space weights, a link and a decision threshold."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from streamfit.core.batch import CSR, Features
from streamfit.core.model import Model

__all__ = ["LinearLearnerModel", "linear_scores"]


def linear_scores(features: Features, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``X @ W + b`` for dense or CSR ``X``."""
    if isinstance(features, CSR):
        out = F.embedding_bag(
            features.indices,
            weight,
            features.indptr[:-1],
            mode="sum",
            per_sample_weights=features.values,
            include_last_offset=False,
        )
        return out + bias
    return torch.addmm(bias, features, weight)


class LinearLearnerModel(Model):
    """Predicts ``score`` and ``predicted_label`` (classifiers) as SageMaker's Linear Learner.

    Tensors: ``weight`` (d, C) and ``bias`` (C,) over raw (unnormalised) features.
    """

    algorithm = "linear-learner"

    @property
    def predictor_type(self) -> str:
        return str(self.meta["predictor_type"])

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    def raw_scores(self, features: Features) -> torch.Tensor:
        features = features.to(self.device) if features.device != self.device else features
        return linear_scores(features, self.tensors["weight"], self.tensors["bias"])

    def predict(self, features: Features) -> dict[str, torch.Tensor]:
        raw = self.raw_scores(features)
        kind = self.predictor_type
        if kind == "regressor":
            return {"score": raw[:, 0]}
        if kind == "multiclass_classifier":
            prob = torch.softmax(raw, dim=1)
            return {"score": prob, "predicted_label": prob.argmax(1)}
        score = torch.sigmoid(raw[:, 0]) if self.meta["loss"] == "logistic" else raw[:, 0]
        return {"score": score, "predicted_label": (score >= self.threshold).long()}

    def records(self, predictions: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        score = predictions["score"].detach().cpu().tolist()
        if "predicted_label" not in predictions:
            return [{"score": s} for s in score]
        labels = predictions["predicted_label"].detach().cpu().tolist()
        return [{"score": s, "predicted_label": int(p)} for s, p in zip(score, labels, strict=True)]
