"""SageMaker's K-Means: one streaming pass over K weighted centres, then any k <= K."""

from streamfit.algorithms.kmeans.algorithm import KMeans
from streamfit.algorithms.kmeans.hyperparameters import KMeansHyperparameters
from streamfit.algorithms.kmeans.model import KMeansModel

__all__ = ["KMeans", "KMeansHyperparameters", "KMeansModel"]
