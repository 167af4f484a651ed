"""SageMaker's DeepAR: probabilistic forecasts of many series from one read of them."""

from streamfit.algorithms.deepar.algorithm import DeepAR
from streamfit.algorithms.deepar.model import DeepARModel

__all__ = ["DeepAR", "DeepARModel"]
