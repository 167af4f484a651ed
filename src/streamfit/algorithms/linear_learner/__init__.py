"""SageMaker's Linear Learner: binary, multiclass and regression, many models in one pass."""

from streamfit.algorithms.linear_learner.algorithm import LinearLearner
from streamfit.algorithms.linear_learner.hyperparameters import LinearLearnerHyperparameters
from streamfit.algorithms.linear_learner.model import LinearLearnerModel

__all__ = ["LinearLearner", "LinearLearnerHyperparameters", "LinearLearnerModel"]
