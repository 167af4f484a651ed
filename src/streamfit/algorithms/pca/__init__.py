"""SageMaker's PCA: one streaming pass, then any number of components."""

from streamfit.algorithms.pca.algorithm import PCA
from streamfit.algorithms.pca.hyperparameters import PCAHyperparameters
from streamfit.algorithms.pca.model import PCAModel

__all__ = ["PCA", "PCAHyperparameters", "PCAModel"]
