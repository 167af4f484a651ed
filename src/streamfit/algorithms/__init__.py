"""The built-in algorithms; importing this package registers them."""

from streamfit.algorithms.deepar import DeepAR
from streamfit.algorithms.factorization_machines import FactorizationMachines
from streamfit.algorithms.kmeans import KMeans
from streamfit.algorithms.linear_learner import LinearLearner
from streamfit.algorithms.ntm import NTM
from streamfit.algorithms.pca import PCA

__all__ = ["NTM", "PCA", "DeepAR", "FactorizationMachines", "KMeans", "LinearLearner"]
