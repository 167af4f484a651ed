"""DeepAR's hyperparameters: SageMaker's names and defaults, with the replay settings that let
one read of a stream train as several epochs would.

``time_freq``, ``context_length`` and ``prediction_length`` are required, as in SageMaker.
``cardinality`` "auto" embeds each categorical feature in a table of ``AUTO_CARDINALITY`` rows,
ids folded into it (a stream's categories are not known before it is read; give the
cardinality for one row per category); "ignore" leaves ``cat`` out. ``num_dynamic_feat``
"auto" takes as many covariates as the first series has; "ignore" none.

Differences from SageMaker's defaults: ``epochs`` 1 (SageMaker requires a number) with
``replay`` 8: one read of a stream, each window trained on about 9 times. Measured on the
tourism panel (benchmarks/deepar.py, quarterly, 8 held out, one thread, seeds 0 to 3): test
mean wQL 0.1414 (0.1385 to 0.1447) at replay 4 in about 10 s, 0.1375 (0.1364 to 0.1386) at 8
in about 16 s; GluonTS's DeepAR, 2,500 batches, 0.141 over 4 seeds in 31 to 47 s.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from streamfit.core.hyperparameters import Auto, Fraction, NonNegativeFloat, PositiveFloat, Seed
from streamfit.core.replaying import ReplayHyperparameters

__all__ = ["AUTO_CARDINALITY", "DeepARHyperparameters", "Likelihood"]

Likelihood = Literal["student-T", "gaussian", "negative-binomial", "beta", "deterministic-L1"]
Ignore = Literal["ignore"]

#: Embedding rows per categorical feature under ``cardinality="auto"``.
AUTO_CARDINALITY = 1000


class DeepARHyperparameters(ReplayHyperparameters):
    """SageMaker DeepAR's hyperparameters."""

    time_freq: str
    context_length: int = Field(ge=1)
    prediction_length: int = Field(ge=1)
    epochs: int = Field(default=1, ge=1)
    likelihood: Likelihood = "student-T"
    num_cells: int = Field(default=40, ge=1, le=200)
    num_layers: int = Field(default=2, ge=1, le=8)
    dropout_rate: Fraction = 0.1
    embedding_dimension: int = Field(default=10, ge=1, le=50)
    #: One number of categories per categorical feature, "auto" or "ignore".
    cardinality: list[int] | Auto | Ignore = "auto"
    #: How many dynamic features each series has, "auto" (the first series') or "ignore".
    num_dynamic_feat: int | Auto | Ignore = "auto"
    learning_rate: PositiveFloat = 0.001
    mini_batch_size: int = Field(default=128, ge=1)
    #: Epochs without improvement of the validation loss before stopping; unset: never.
    early_stopping_patience: int | None = Field(default=None, ge=1)
    num_eval_samples: int = Field(default=100, ge=1)
    test_quantiles: list[float] = Field(
        default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    )
    #: Training windows start every ``stride`` steps back from a series' end; auto: 1.
    stride: int | Auto = "auto"
    replay: NonNegativeFloat = 8.0
    #: Long-format rows (series that arrive in pieces): the memory of the table of each
    #: series' recent steps; the least recently updated series is evicted when it is full.
    series_table_mb: PositiveFloat = 64.0
    seed: Seed = 0

    @field_validator("cardinality")
    @classmethod
    def _positive(cls, value: list[int] | str) -> list[int] | str:
        if isinstance(value, list) and any(c < 1 for c in value):
            raise ValueError("each cardinality must be at least 1")
        return value

    @field_validator("num_dynamic_feat")
    @classmethod
    def _count(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("num_dynamic_feat must be at least 0")
        return value

    @field_validator("test_quantiles")
    @classmethod
    def _quantiles(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < q < 1 for q in value):
            raise ValueError("test_quantiles must be a non-empty list of numbers in (0, 1)")
        return value

    @property
    def resolved_stride(self) -> int:
        return 1 if self.stride == "auto" else int(self.stride)
