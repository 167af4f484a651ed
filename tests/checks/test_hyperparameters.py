"""The hyperparameter check catches a float that takes nan or infinity."""

from __future__ import annotations

import pytest
from pydantic import ConfigDict

from streamfit.algorithms.kmeans import KMeans
from streamfit.algorithms.kmeans.hyperparameters import KMeansHyperparameters
from streamfit.checks import check_floats_refuse_non_finite


class NanTolerant(KMeansHyperparameters):
    """A float of no bounds (bounds refuse nan by themselves), and nan allowed."""

    model_config = ConfigDict(allow_inf_nan=True)
    damping: float = 0.5


class TakesNan(KMeans):
    hyperparameters_class = NanTolerant


def test_a_float_that_takes_nan_fails() -> None:
    check_floats_refuse_non_finite(KMeans)
    with pytest.raises(AssertionError, match="damping=nan was accepted"):
        check_floats_refuse_non_finite(TakesNan)
