"""Hyperparameter parsing: SageMaker's strings, and errors naming the hyperparameter."""

from __future__ import annotations

import pytest

from streamfit import ConfigError, get_algorithm
from streamfit.core.hyperparameters import parse_hp_assignments
from streamfit.errors import UnknownAlgorithmError


def test_assignments_parse_and_reject_malformed_items() -> None:
    assert parse_hp_assignments(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_hp_assignments(["novalue"])


def test_unknown_algorithm_lists_the_known_ones() -> None:
    with pytest.raises(UnknownAlgorithmError, match=r"known: .*linear-learner"):
        get_algorithm("linear_leaner")
    assert get_algorithm("Linear_Learner").name == "linear-learner"


def test_every_bad_hyperparameter_is_named_once() -> None:
    cls = get_algorithm("linear-learner")
    with pytest.raises(ConfigError) as info:
        cls({"predictor_type": "binary_classifier", "epochs": "0", "margin": "wide"})
    message = str(info.value)
    assert "'epochs'='0'" in message and "'margin'='wide'" in message


def test_list_valued_strings_are_decoded() -> None:
    from pydantic import Field

    from streamfit.core.hyperparameters import Hyperparameters, parse_hyperparameters

    class HP(Hyperparameters):
        quantiles: list[float] = Field(default_factory=lambda: [0.5])

    assert parse_hyperparameters(HP, {"quantiles": "[0.1, 0.9]"}, algorithm="x").quantiles == [
        0.1,
        0.9,
    ]
