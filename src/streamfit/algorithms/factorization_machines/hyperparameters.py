"""Factorization Machines' hyperparameters: SageMaker's names and defaults, but the optimiser
and model packing.

``optimizer`` is Adagrad with ``linear_lr`` 0.05 and ``factors_lr`` 0.02 unless a learning
rate is given; then SageMaker's Adam with its rates (0.001, 0.0001) for the other: a job
written for SageMaker trains as there. SageMaker's Adam defaults learned too little in one
pass on real one-hot data (README, "Factorization Machines").

``num_models`` candidates train at once around those settings (:mod:`.grid`) and the model
is the one with the best held-out score (:mod:`.choice`): 8 unless a learning rate is given
(then 1, SageMaker's single model) or 8 tables would pass 2 GiB (then as many as fit).

>>> hp = FactorizationMachinesHyperparameters(feature_dim=8, num_factors=2,
...                                           predictor_type="binary_classifier")
>>> hp.optimizer, hp.linear_lr, hp.factors_lr, hp.num_models
('adagrad', 0.05, 0.02, 8)
>>> hp = FactorizationMachinesHyperparameters(feature_dim=8, num_factors=2, linear_lr=0.01,
...                                           predictor_type="binary_classifier")
>>> hp.optimizer, hp.linear_lr, hp.factors_lr, hp.num_models
('adam', 0.01, 0.0001, 1)

Further additions, all off by default: ``hash_features`` folds any feature id (and raw
categorical strings from tabular files) into ``feature_dim`` instead of refusing ids beyond
it; ``optimizer`` also offers rmsprop and sgd; ``averaging_batches`` makes the model an
exponential moving average of the parameters over about that many mini-batches rather than
the last iterate (Polyak-Ruppert averaging, kept lazily: only the rows a batch uses are
touched). Post-training, as Linear Learner's: ``binary_classifier_model_selection_criteria``
(default ``loss_function``: the log loss or squared error the candidates train on, and the
0.5 threshold; the others also choose the threshold), ``f_beta``, ``target_precision``,
``target_recall``, and ``candidate`` (any candidate by its index, whatever the criterion).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from streamfit.algorithms.linear_learner.hyperparameters import Criterion
from streamfit.algorithms.linear_learner.optim import moment_names
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
    #: auto (or not given): Adagrad, unless a learning rate is given (then SageMaker's Adam,
    #: for which a SageMaker user chose it).
    optimizer: Literal["adam", "adagrad", "rmsprop", "sgd"] = "adagrad"
    bias_lr: float = Field(default=0.1, ge=0)
    #: auto: 0.05 with Adagrad (one pass, measured on real data), else SageMaker's 0.001.
    linear_lr: float = Field(default=0.05, ge=0)
    #: auto: 0.02 with Adagrad, else SageMaker's 0.0001.
    factors_lr: float = Field(default=0.02, ge=0)
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
    #: Candidates trained at once (:mod:`.grid`). auto (or not given): 8 when no learning
    #: rate is given, fewer where their table would pass 2 GiB; 1 when one is (the model
    #: asked for, as SageMaker trains it).
    num_models: int = Field(default=8, ge=1, le=64)
    #: Post-training: how ``finalize`` chooses the candidate (and, but for
    #: ``loss_function``, the binary classifier's threshold), on held-out rows.
    binary_classifier_model_selection_criteria: Criterion = "loss_function"
    f_beta: float = Field(default=1.0, gt=0)
    target_precision: float = Field(default=0.8, gt=0, le=1)
    target_recall: float = Field(default=0.8, gt=0, le=1)
    seed: Seed = 0

    @model_validator(mode="before")
    @classmethod
    def _auto(cls, data: Any) -> Any:
        """``optimizer``, ``linear_lr`` and ``factors_lr`` "auto" (or not given) made
        concrete, so that a state records what trained it."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        given = [out.get(k, "auto") != "auto" for k in ("linear_lr", "factors_lr")]
        if out.get("optimizer", "auto") == "auto":
            out["optimizer"] = "adam" if any(given) else "adagrad"
        rates = _AUTO_RATES[out["optimizer"] == "adagrad"]
        for key, rate in zip(("linear_lr", "factors_lr"), rates, strict=True):
            if out.get(key, "auto") == "auto":
                out[key] = rate
        if out.get("num_models", "auto") == "auto":
            out["num_models"] = 1 if any(given) else _auto_models(out)
        return out


#: The most memory "auto" gives the candidates' table (parameters and optimiser moments).
AUTO_TABLE_BYTES = 2 << 30


def _auto_models(raw: dict[str, Any]) -> int:
    """8, or as many candidates as keep the table within :data:`AUTO_TABLE_BYTES` (at
    least 1). Values the fields refuse fall back to 8: the field's check names them.

    >>> _auto_models({"feature_dim": "1000000", "num_factors": 64, "optimizer": "adagrad"})
    4
    """
    try:
        d, k = int(raw["feature_dim"]), int(raw["num_factors"])
        slots = 1 + len(moment_names(raw["optimizer"])) + (int(raw.get("averaging_batches", 0)) > 0)
    except (KeyError, TypeError, ValueError):
        return 8
    return max(1, min(8, AUTO_TABLE_BYTES // max(1, 4 * d * (k + 1) * slots)))


#: (linear_lr, factors_lr) of "auto": with Adagrad (True), and with the others (SageMaker's).
_AUTO_RATES = {True: (0.05, 0.02), False: (0.001, 0.0001)}


#: How the shared checks (:mod:`streamfit.checks`) train and judge the algorithm.
CHECK_PARAMETERS = CheckParameters(
    hyperparameters={
        "feature_dim": 8,
        "num_factors": 4,
        "predictor_type": "binary_classifier",
        "linear_lr": 0.05,
        "factors_lr": 0.05,
        "mini_batch_size": 500,
        "num_models": 3,
    },
    metric="binary_classification_cross_entropy",
    memory_hyperparameters={
        "feature_dim": 20,
        "num_factors": 8,
        "predictor_type": "binary_classifier",
    },
    memory_data=GeneratedData("linear_task", (20, "binary")),
)
