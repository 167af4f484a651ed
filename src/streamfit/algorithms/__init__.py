"""The built-in algorithms; importing this package registers them."""

from streamfit.algorithms.linear_learner import LinearLearner

__all__ = ["LinearLearner"]
