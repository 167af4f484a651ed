"""SageMaker's Neural Topic Model, built as ProdLDA: topics from a stream of documents."""

from streamfit.algorithms.ntm.algorithm import NTM
from streamfit.algorithms.ntm.model import NTMModel

__all__ = ["NTM", "NTMModel"]
