"""K-Means hyperparameters: SageMaker's names and defaults.

``feature_dim`` may be ``auto`` (the first batch fixes the width), so is ``extra_center_factor``
and ``local_lloyd_num_trials``; the resolved values are properties.

>>> hp = KMeansHyperparameters(k="25")
>>> hp.resolved_extra_center_factor, hp.resolved_num_trials, hp.eval_metrics
(10, 10, ['msd'])
>>> KMeansHyperparameters(k=400).resolved_extra_center_factor
2
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from streamfit.core.check_parameters import CheckParameters, GeneratedData
from streamfit.core.hyperparameters import Auto, Hyperparameters, Seed

__all__ = ["CHECK_PARAMETERS", "KMeansHyperparameters", "auto_extra_center_factor"]

InitMethod = Literal["random", "kmeans++"]
Metric = Literal["msd", "ssd"]

#: ``extra_center_factor=auto`` keeps K = k x factor at most this (unless k itself is larger).
MAX_AUTO_CENTERS = 1000
#: ``local_lloyd_num_trials=auto``. The trials run together as a batch dimension, so ten cost
#: about twice what one does (15 ms against 9 for 25 clusters from 250 centres in 50
#: dimensions); on imbalanced clusters a single k-means++ seeding often puts two centres in a
#: large cluster and merges two small ones.
AUTO_TRIALS = 10


def auto_extra_center_factor(k: int) -> int:
    """10 extra centres per cluster, fewer for large k (at least 2) so that K stays near
    ``MAX_AUTO_CENTERS``.

    Ten per cluster: a random start from K rows of k equally likely clusters leaves one of them
    without a centre with probability about k e^-10 (5e-5 per cluster); on 25 clusters whose
    sizes fall geometrically to 0.1% of the rows, 10 found the batch optimum from a random start
    with every seed tried where 3 and 5 sometimes merged small clusters; and ``--sweep`` can
    ask for up to 10k clusters. The update costs n K d, hence the cap.

    >>> [auto_extra_center_factor(k) for k in (1, 25, 100, 200, 5000)]
    [10, 10, 10, 5, 2]
    """
    return max(2, min(10, MAX_AUTO_CENTERS // k))


class KMeansHyperparameters(Hyperparameters):
    """SageMaker K-Means's hyperparameters (``auto`` = chosen from ``k``)."""

    k: int = Field(ge=1)
    feature_dim: int | Auto = "auto"
    epochs: int = Field(default=1, ge=1)
    mini_batch_size: int = Field(default=5000, ge=1)
    extra_center_factor: int | Auto = "auto"
    init_method: InitMethod = "random"
    half_life_time_size: int = Field(default=0, ge=0)
    local_lloyd_init_method: InitMethod = "kmeans++"
    local_lloyd_max_iter: int = Field(default=300, ge=1)
    local_lloyd_num_trials: int | Auto = "auto"
    local_lloyd_tol: float = Field(default=1e-4, ge=0, le=1)
    eval_metrics: list[Metric] = Field(default_factory=lambda: list[Metric](["msd"]), min_length=1)
    seed: Seed = 0

    @model_validator(mode="after")
    def _positive(self) -> KMeansHyperparameters:
        for name in ("feature_dim", "extra_center_factor", "local_lloyd_num_trials"):
            value = getattr(self, name)
            if isinstance(value, int) and value < 1:
                raise ValueError(f"{name} must be at least 1 or auto, got {value}")
        return self

    @property
    def resolved_extra_center_factor(self) -> int:
        if self.extra_center_factor == "auto":
            return auto_extra_center_factor(self.k)
        return self.extra_center_factor

    @property
    def num_centers(self) -> int:
        """K: the weighted centres the state keeps."""
        return self.k * self.resolved_extra_center_factor

    @property
    def resolved_num_trials(self) -> int:
        return AUTO_TRIALS if self.local_lloyd_num_trials == "auto" else self.local_lloyd_num_trials


#: How the shared checks (:mod:`streamfit.checks`) train and judge the algorithm.
CHECK_PARAMETERS = CheckParameters(
    hyperparameters={"k": 4, "mini_batch_size": 500},
    metric="msd",
    memory_hyperparameters={"k": 5},
    memory_data=GeneratedData("cluster_task", (20, 5)),
)
