"""Factorization Machines' hyperparameters: SageMaker's names and defaults.

Three additions, all off by default: ``hash_features`` folds any feature id (and raw
categorical strings from tabular files) into ``feature_dim`` instead of refusing ids beyond
it; ``optimizer`` names the update rule (SageMaker's, Adam, by default; Adagrad is the usual
choice for one pass over click logs); ``averaging_batches`` makes the model an exponential
moving average of the parameters over about that many mini-batches rather than the last
iterate (Polyak-Ruppert averaging, kept lazily: only the rows a batch uses are touched).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streamfit.core.check_parameters import CheckParameters, GeneratedData
from streamfit.core.hyperparameters import Hyperparameters, Seed

__all__ = ["CHECK_PARAMETERS", "FactorizationMachinesHyperparameters", "InitMethod"]

InitMethod = Literal["normal", "uniform", "constant"]


class FactorizationMachinesHyperparameters(Hyperparameters):
    """SageMaker Factorization Machines' hyperparameters."""

    feature_dim: int = Field(ge=1)
    num_factors: int = Field(ge=2, le=1000)
    predictor_type: Literal["binary_classifier", "regressor"]
    epochs: int = Field(default=1, ge=1)
    mini_batch_size: int = Field(default=1000, ge=1)
    optimizer: Literal["adam", "adagrad", "rmsprop", "sgd"] = "adam"
    bias_lr: float = Field(default=0.1, ge=0)
    linear_lr: float = Field(default=0.001, ge=0)
    factors_lr: float = Field(default=0.0001, ge=0)
    bias_wd: float = Field(default=0.01, ge=0)
    linear_wd: float = Field(default=0.001, ge=0)
    factors_wd: float = Field(default=0.00001, ge=0)
    bias_init_method: InitMethod = "normal"
    bias_init_scale: float | None = Field(default=None, gt=0)
    bias_init_sigma: float = Field(default=0.01, gt=0)
    bias_init_value: float = 0.0
    linear_init_method: InitMethod = "normal"
    linear_init_scale: float | None = Field(default=None, gt=0)
    linear_init_sigma: float = Field(default=0.01, gt=0)
    linear_init_value: float = 0.0
    factors_init_method: InitMethod = "normal"
    factors_init_scale: float | None = Field(default=None, gt=0)
    factors_init_sigma: float = Field(default=0.001, gt=0)
    factors_init_value: float = 0.0
    clip_gradient: float | None = Field(default=None, gt=0)
    eps: float = Field(default=1e-8, gt=0)
    rescale_grad: float = Field(default=1.0, gt=0)
    beta_1: float = Field(default=0.9, ge=0, lt=1)
    beta_2: float = Field(default=0.999, ge=0, lt=1)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    hash_features: bool = False
    averaging_batches: int = Field(default=0, ge=0)
    seed: Seed = 0


#: How the shared checks (:mod:`streamfit.checks`) train and judge the algorithm.
CHECK_PARAMETERS = CheckParameters(
    hyperparameters={
        "feature_dim": 8,
        "num_factors": 4,
        "predictor_type": "binary_classifier",
        "linear_lr": 0.05,
        "factors_lr": 0.05,
        "mini_batch_size": 500,
    },
    metric="binary_classification_cross_entropy",
    memory_hyperparameters={
        "feature_dim": 20,
        "num_factors": 8,
        "predictor_type": "binary_classifier",
    },
    memory_data=GeneratedData("linear_task", (20, "binary")),
)
