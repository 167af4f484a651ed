"""The Neural Topic Model's hyperparameters: SageMaker's names, with defaults for one pass.

Differences from SageMaker's defaults, each measured on benchmarks/ntm.py's Debian corpus (NPMI
of one read; README, "Neural Topic Model"): ``optimizer`` adam at ``learning_rate`` 0.01 (at
256 documents a batch, K = 20, seeds 0 and 1: 0.002 gave 0.18 and 0.15, 0.005 0.23 and 0.23,
0.01 0.24 and 0.26, 0.02 0.23; at 64 a batch 0.005 gave 0.24 against 0.30; adadelta at 0.001
barely moves in one pass); ``mini_batch_size`` 64 (topics need steps more than documents a
step: 0.30 at 64, 0.23 at 128, 0.25 at 256 for K = 20; 0.30, 0.25 and 0.21 for K = 50, topic
diversity 0.65, 0.55 and 0.51); ``epochs`` 1 with ``replay`` auto, 3 up to 24 topics and
``num_topics / 8`` above (one read of a stream; at 256 a batch replay 2 gave 0.13 and 0.13, 3
0.21 and 0.24, 4 0.24 and 0.26, 8 0.27 in twice the time; at K = 50 topic diversity needs more
steps: 0.66 at replay 4, 0.74 at 6); ``batch_norm`` true (the batch-normalised product of
experts of ProdLDA: without it topics collapse onto the most frequent words) and
``encoder_layers_activation`` softplus (ProdLDA's; sigmoid, tanh and relu remain).
``clip_gradient`` is unset (SageMaker's ``inf``: no clipping). Additions: ``dropout``
(ProdLDA's dropout on the encoder's output and the topic proportions), ``num_top_words`` (how
many words each topic lists in ``topics.json``; post-training), the replay settings and
``seed``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from streamfit.core.check_parameters import CheckParameters, GeneratedData
from streamfit.core.hyperparameters import (
    Auto,
    Fraction,
    NonNegativeFloat,
    PositiveFloat,
    Seed,
)
from streamfit.core.replaying import ReplayHyperparameters

__all__ = ["CHECK_PARAMETERS", "NTMHyperparameters", "Optimizer"]

Optimizer = Literal["adadelta", "sgd", "adam", "adagrad", "rmsprop"]
Activation = Literal["sigmoid", "tanh", "relu", "softplus"]


class NTMHyperparameters(ReplayHyperparameters):
    """SageMaker NTM's hyperparameters (and ProdLDA's dropout)."""

    feature_dim: int = Field(ge=1)  # the vocabulary's size (or hash buckets)
    num_topics: int = Field(ge=2, le=1000)
    #: Hidden layers' widths; auto: two layers of 3 and 2 times num_topics units.
    encoder_layers: list[int] | Auto = "auto"
    encoder_layers_activation: Activation = "softplus"
    optimizer: Optimizer = "adam"
    learning_rate: PositiveFloat = 0.01
    mini_batch_size: int = Field(default=64, ge=1)
    epochs: int = Field(default=1, ge=1)
    weight_decay: NonNegativeFloat = 0.0
    #: Multiplies the gradient before clipping and the step.
    rescale_gradient: PositiveFloat = 1.0
    #: Clip each gradient entry to [-c, c]; unset: no clipping (SageMaker's inf).
    clip_gradient: PositiveFloat | None = None
    batch_norm: bool = True
    #: The share of each batch's documents trained on (each kept with this probability).
    sub_sample: float = Field(default=1.0, gt=0, le=1)
    num_patience_epochs: int = Field(default=3, ge=1)
    tolerance: NonNegativeFloat = 0.001
    dropout: Fraction = 0.2
    num_top_words: int = Field(default=10, ge=1)
    #: Reservoir batches after each fresh one; auto: 3, or num_topics / 8 above 24 topics.
    replay: NonNegativeFloat | Auto = "auto"  # type: ignore[assignment]  # resolved_replay
    seed: Seed = 0

    @field_validator("encoder_layers")
    @classmethod
    def _positive_widths(cls, value: list[int] | str) -> list[int] | str:
        if isinstance(value, list) and (not value or any(w < 1 for w in value)):
            raise ValueError("encoder_layers must be 'auto' or a non-empty list of widths >= 1")
        return value

    @property
    def resolved_replay(self) -> float:
        """``replay``, auto resolved: more topics need more steps to come apart (measured at
        K = 50: topic diversity 0.59 at replay 2, 0.66 at 4, 0.71 and 0.697 at 5 (seeds 0 and
        1), 0.74 at 6 and 0.76 at 8, NPMI 0.29 from 4 on). At K = 20 replay 3 is enough, in a
        fifth fewer steps than 4: NPMI 0.289 and 0.273 (seeds 0 and 1), diversity 0.83,
        against 0.30 and 0.84 at 4; replay 2 falls to 0.186."""
        if self.replay == "auto":
            return max(3.0, self.num_topics / 8)
        return float(self.replay)

    @property
    def resolved_encoder_layers(self) -> list[int]:
        if self.encoder_layers == "auto":
            return [3 * self.num_topics, 2 * self.num_topics]
        return list(self.encoder_layers)


#: How the shared checks (:mod:`streamfit.checks`) train and judge the algorithm.
CHECK_PARAMETERS = CheckParameters(
    hyperparameters={
        "feature_dim": 200,
        "num_topics": 5,
        "mini_batch_size": 500,
        "replay": 0.5,
        "replay_capacity_mb": 0.2,
    },
    metric="total_loss",
    memory_hyperparameters={
        "feature_dim": 100,
        "num_topics": 4,
        "mini_batch_size": 2000,
        "replay": 0.25,
        "replay_capacity_mb": 1,
    },
    memory_data=GeneratedData("lda_task", (100, 4), {"doc_length": 3}),
    multi_epoch={"num_patience_epochs": 100},
    data=GeneratedData("lda_task", (200, 5), {"seed": 3, "doc_length": 30}),
)
