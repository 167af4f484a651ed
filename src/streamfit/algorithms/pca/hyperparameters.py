"""PCA's hyperparameters: SageMaker's names and defaults.

SageMaker requires ``feature_dim`` and ``mini_batch_size``; here the first defaults to the
data's width and the second to 5000 (the result does not depend on it: the state is a sum over
rows).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from streamfit.core.check_parameters import CheckParameters, GeneratedData
from streamfit.core.hyperparameters import Hyperparameters, Seed

__all__ = ["CHECK_PARAMETERS", "PCAHyperparameters"]


class PCAHyperparameters(Hyperparameters):
    """SageMaker PCA's hyperparameters.

    >>> hp = PCAHyperparameters(num_components=3, algorithm_mode="randomized")
    >>> hp.sketch_width  # num_components + max(100, num_components)
    103
    """

    num_components: int = Field(ge=1)
    feature_dim: int | Literal["auto"] = "auto"
    mini_batch_size: int = Field(default=5000, ge=1)
    algorithm_mode: Literal["regular", "randomized"] = "regular"
    #: Sketch columns beyond ``num_components`` (randomized mode); -1: max(100, num_components).
    extra_components: int = Field(default=-1, ge=-1)
    subtract_mean: bool = True
    seed: Seed = 0

    @model_validator(mode="after")
    def _consistent(self) -> PCAHyperparameters:
        if isinstance(self.feature_dim, int):
            if self.feature_dim < 1:
                raise ValueError(f"feature_dim must be at least 1, got {self.feature_dim}")
            if self.num_components > self.feature_dim:
                raise ValueError(
                    f"num_components={self.num_components} exceeds feature_dim={self.feature_dim}"
                )
        return self

    @property
    def sketch_width(self) -> int:
        """l = num_components + extra_components: the randomized sketch's columns (capped at
        the number of features when the state is made).

        The auto oversampling is large because one pass allows no power iterations, so the
        sketch alone must separate the kept components from a slowly decaying tail: on MNIST
        (784 pixels) the top 10 components of an l = 20 sketch explained 8% less variance than
        the exact ones, 0.4% at l = 80 and 0.15% at l = 110 (worst of 10 seeds; benchmarks/pca.py
        --real).
        """
        extra = self.extra_components
        return self.num_components + (max(100, self.num_components) if extra == -1 else extra)


#: How the shared checks (:mod:`streamfit.checks`) train and judge the algorithm: randomized,
#: the mode that draws random numbers, so that the seed check bites (regular mode has none);
#: the checks' 8 features cap its sketch at 8 columns.
CHECK_PARAMETERS = CheckParameters(
    hyperparameters={
        "num_components": 3,
        "algorithm_mode": "randomized",
        "mini_batch_size": 500,
    },
    metric="reconstruction_mse",
    memory_hyperparameters={"num_components": 3, "algorithm_mode": "randomized"},
    memory_data=GeneratedData("low_rank_task", (20, 3)),
)
