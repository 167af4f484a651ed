"""Linear Learner's hyperparameters: SageMaker's names and defaults.

One deliberate difference: ``epochs`` defaults to 1 (one streaming pass) rather than 15;
existing configurations that set it keep their value.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from streamfit.core.check_parameters import CheckParameters, GeneratedData
from streamfit.core.hyperparameters import (
    Auto,
    Fraction,
    Hyperparameters,
    NonNegativeFloat,
    PositiveFloat,
    Seed,
)

__all__ = ["CHECK_PARAMETERS", "LOSSES", "LinearLearnerHyperparameters"]

PredictorType = Literal["binary_classifier", "multiclass_classifier", "regressor"]
Loss = Literal[
    "auto",
    "logistic",
    "softmax_loss",
    "squared_loss",
    "absolute_loss",
    "hinge_loss",
    "eps_insensitive_squared_loss",
    "eps_insensitive_absolute_loss",
    "quantile_loss",
    "huber_loss",
]
Criterion = Literal[
    "accuracy",
    "f_beta",
    "precision_at_target_recall",
    "recall_at_target_precision",
    "loss_function",
]

#: The losses each predictor type accepts; the first is what ``auto`` means.
LOSSES: dict[str, tuple[str, ...]] = {
    "binary_classifier": ("logistic", "hinge_loss"),
    "multiclass_classifier": ("softmax_loss",),
    "regressor": (
        "squared_loss",
        "absolute_loss",
        "eps_insensitive_squared_loss",
        "eps_insensitive_absolute_loss",
        "quantile_loss",
        "huber_loss",
    ),
}


class LinearLearnerHyperparameters(Hyperparameters):
    """SageMaker Linear Learner's hyperparameters (``auto`` = chosen from the data)."""

    predictor_type: PredictorType
    num_classes: int | None = Field(default=None, ge=3)
    feature_dim: int | Auto = "auto"
    num_models: int | Auto = "auto"
    num_calibration_samples: int | Auto = "auto"
    loss: Loss = "auto"
    binary_classifier_model_selection_criteria: Criterion = "accuracy"
    epochs: int = Field(default=1, ge=1)
    mini_batch_size: int = Field(default=1000, ge=1)
    optimizer: Literal["auto", "sgd", "adam", "rmsprop"] = "auto"
    learning_rate: PositiveFloat | Auto = "auto"
    wd: NonNegativeFloat | Auto = "auto"
    l1: NonNegativeFloat | Auto = "auto"
    momentum: Fraction | Auto = "auto"
    beta_1: Fraction | Auto = "auto"
    beta_2: Fraction | Auto = "auto"
    bias_lr_mult: NonNegativeFloat | Auto = "auto"
    bias_wd_mult: NonNegativeFloat | Auto = "auto"
    use_lr_scheduler: bool = True
    lr_scheduler_step: int | Auto = "auto"
    lr_scheduler_factor: Annotated[float, Field(gt=0, le=1)] | Auto = "auto"
    lr_scheduler_minimum_lr: NonNegativeFloat | Auto = "auto"
    early_stopping_patience: int = Field(default=3, ge=1)
    early_stopping_tolerance: float = Field(default=0.001, ge=0)
    normalize_data: bool = True
    normalize_label: bool | Auto = "auto"
    num_point_for_scaler: int = Field(default=10_000, ge=1)
    use_bias: bool = True
    init_method: Literal["uniform", "normal"] = "uniform"
    init_scale: float = Field(default=0.07, gt=0)
    init_sigma: float = Field(default=0.01, gt=0)
    init_bias: float = 0.0
    positive_example_weight_mult: PositiveFloat | Literal["auto", "balanced"] = 1.0
    balance_multiclass_weights: bool = False
    f_beta: float = Field(default=1.0, gt=0)
    target_precision: float = Field(default=0.8, gt=0, le=1)
    target_recall: float = Field(default=0.8, gt=0, le=1)
    quantile: float = Field(default=0.5, gt=0, lt=1)
    huber_delta: float = Field(default=1.0, gt=0)
    loss_insensitivity: float = Field(default=0.01, ge=0)
    margin: float = Field(default=1.0, ge=0)
    accuracy_top_k: int = Field(default=3, ge=1)
    #: At the end of a one-epoch read that fitted in ``replay_capacity_mb``: at most this
    #: many epochs over its rows, chosen on 1 row in 16 held out (0: none; auto: 16).
    replay_epochs: int | Auto = "auto"
    #: The memory that keeps a read's rows while it fits (the reservoir and held-out rows).
    replay_capacity_mb: PositiveFloat = 32.0
    seed: Seed = 0

    @model_validator(mode="after")
    def _consistent(self) -> LinearLearnerHyperparameters:
        if self.predictor_type == "multiclass_classifier" and self.num_classes is None:
            raise ValueError("num_classes is required for predictor_type=multiclass_classifier")
        if self.loss != "auto" and self.loss not in LOSSES[self.predictor_type]:
            allowed = ", ".join(LOSSES[self.predictor_type])
            raise ValueError(
                f"loss={self.loss} does not fit predictor_type={self.predictor_type} "
                f"(allowed: auto, {allowed})"
            )
        if isinstance(self.replay_epochs, int) and self.replay_epochs < 0:
            raise ValueError(f"replay_epochs must be auto or at least 0, got {self.replay_epochs}")
        for name in ("num_models", "num_calibration_samples", "feature_dim"):
            value = getattr(self, name)
            if isinstance(value, int) and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        return self

    # -- "auto" resolved ---------------------------------------------------------------------

    @property
    def resolved_loss(self) -> str:
        return LOSSES[self.predictor_type][0] if self.loss == "auto" else self.loss

    @property
    def n_outputs(self) -> int:
        return int(self.num_classes or 0) if self.predictor_type == "multiclass_classifier" else 1

    @property
    def resolved_num_models(self) -> int:
        return 32 if self.num_models == "auto" else self.num_models

    @property
    def resolved_replay_epochs(self) -> int:
        return 16 if self.replay_epochs == "auto" else self.replay_epochs

    @property
    def resolved_optimizer(self) -> str:
        return "adam" if self.optimizer == "auto" else self.optimizer

    @property
    def resolved_normalize_label(self) -> bool:
        if self.normalize_label == "auto":
            return self.predictor_type == "regressor"
        return self.normalize_label and self.predictor_type == "regressor"


#: How the shared checks (:mod:`streamfit.checks`) train and judge the algorithm.
CHECK_PARAMETERS = CheckParameters(
    hyperparameters={
        "predictor_type": "binary_classifier",
        "num_models": 4,
        "mini_batch_size": 500,
        "num_point_for_scaler": 1000,
    },
    metric="objective_loss",
    multi_epoch={"early_stopping_patience": 100},
    memory_hyperparameters={"predictor_type": "binary_classifier", "num_models": 8},
    memory_data=GeneratedData("linear_task", (20, "binary")),
)
