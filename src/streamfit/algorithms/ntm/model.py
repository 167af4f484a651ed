"""A trained Neural Topic Model: each document's topic weights, and the topics as words."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import torch

from streamfit.algorithms.ntm.network import ProdLDA
from streamfit.core.batch import CSR, Features
from streamfit.core.model import Model

__all__ = ["NTMModel", "top_words"]


def top_words(decoder: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each topic's ``n`` words of highest decoder weight, most important first, and their
    weights as probabilities (the softmax over words of the topic's column of the decoder,
    the topic's expert in the product): ``(topics, n)`` ids and weights.

    >>> ids, weights = top_words(torch.tensor([[0.0, 2.0], [1.0, 0.0], [3.0, 1.0]]), 2)
    >>> ids.tolist()
    [[2, 1], [0, 2]]
    """
    probs = torch.softmax(decoder.T.double(), dim=1)
    weights, ids = torch.topk(probs, min(n, probs.shape[1]), dim=1)
    return ids, weights.float()


class NTMModel(Model):
    """The network's tensors (``meta`` holds its shape) and ``meta["topics"]``: each topic's
    top words as ``{"id", "word", "weight"}`` (``word`` None when unknown), also written as
    ``topics.json`` in the model folder."""

    algorithm = "ntm"
    extra_files: ClassVar[tuple[str, ...]] = ("topics.json",)

    def network(self) -> ProdLDA:
        m = self.meta
        net = ProdLDA(
            m["n_features"],
            m["num_topics"],
            list(m["encoder_layers"]),
            m["activation"],
            0.0,
            m["batch_norm"],
        )
        net.load_state_dict(self.tensors)
        return net.to(self.device).eval()

    def predict(self, features: Features) -> dict[str, torch.Tensor]:
        x = features.to(self.device)
        if not isinstance(x, CSR):
            x = x.float()
        with torch.no_grad():
            return {"topic_weights": self.network().topic_weights(x)}

    def records(self, predictions: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        return [{"topic_weights": row} for row in predictions["topic_weights"].tolist()]

    def extra_documents(self) -> dict[str, bytes]:
        return {
            "topics.json": (json.dumps({"topics": self.meta["topics"]}, indent=1) + "\n").encode()
        }
