"""The built-in algorithms; importing this package registers them."""

from streamfit.algorithms.kmeans import KMeans
from streamfit.algorithms.linear_learner import LinearLearner
from streamfit.algorithms.pca import PCA

__all__ = ["PCA", "KMeans", "LinearLearner"]  # ruff's order: upper-case names first
