"""The Factorization Machines model: ``w0``, ``w`` (d,) and ``v`` (d, k)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from streamfit.core.batch import CSR, Features
from streamfit.core.model import Model

__all__ = ["FactorizationMachinesModel", "fm_scores"]


def fm_scores(
    features: Features, w0: torch.Tensor, w: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """``w0 + x.w + sum_{i<j} <v_i, v_j> x_i x_j`` for each row, by the O(nnz k) identity
    ``sum_{i<j} <v_i, v_j> x_i x_j = 1/2 sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2]``.

    >>> v = torch.tensor([[1.0, 0.0], [0.5, 2.0], [0.0, 1.0]])
    >>> x = torch.tensor([[1.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    >>> fm_scores(x, torch.tensor(0.0), torch.zeros(3), v).tolist()  # <v0,v1> x0 x1 = 0.5*2
    [1.0, 2.5]
    >>> fm_scores(CSR.from_dense(x), torch.tensor(0.0), torch.zeros(3), v).tolist()
    [1.0, 2.5]
    """
    if isinstance(features, CSR):
        offsets = features.indptr[:-1]
        vals = features.values
        linear = F.embedding_bag(
            features.indices, w.unsqueeze(1), offsets, mode="sum", per_sample_weights=vals
        ).squeeze(1)
        s = F.embedding_bag(features.indices, v, offsets, mode="sum", per_sample_weights=vals)
        q = F.embedding_bag(
            features.indices, v * v, offsets, mode="sum", per_sample_weights=vals * vals
        )
    else:
        linear = features @ w
        s = features @ v
        q = (features * features) @ (v * v)
    return w0 + linear + 0.5 * (s * s - q).sum(1)


class FactorizationMachinesModel(Model):
    """Answers ``score`` (and ``predicted_label`` for binary classifiers: 1 when the score is
    at least ``meta["threshold"]``, 0.5 unless a selection criterion chose another) as
    SageMaker's Factorization Machines. Tensors: ``w0``, ``w``, ``v``.

    >>> model = FactorizationMachinesModel(
    ...     {"w0": torch.tensor(0.0), "w": torch.tensor([2.0, -2.0]), "v": torch.zeros(2, 2)},
    ...     {"predictor_type": "binary_classifier"},
    ... )
    >>> [round(r["score"], 3) for r in model.records(model.predict(torch.eye(2)))]
    [0.881, 0.119]
    """

    algorithm = "factorization-machines"

    @property
    def predictor_type(self) -> str:
        return str(self.meta["predictor_type"])

    def raw_scores(self, features: Features) -> torch.Tensor:
        features = features.to(self.device) if features.device != self.device else features
        t = self.tensors
        return fm_scores(features, t["w0"], t["w"], t["v"])

    def predict(self, features: Features) -> dict[str, torch.Tensor]:
        raw = self.raw_scores(features)
        if self.predictor_type == "regressor":
            return {"score": raw}
        score = torch.sigmoid(raw)
        threshold = float(self.meta.get("threshold", 0.5))
        return {"score": score, "predicted_label": (score >= threshold).long()}

    def records(self, predictions: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        score = predictions["score"].detach().cpu().double().tolist()
        if "predicted_label" not in predictions:
            return [{"score": s} for s in score]
        labels = predictions["predicted_label"].detach().cpu().tolist()
        return [{"score": s, "predicted_label": int(p)} for s, p in zip(score, labels, strict=True)]
