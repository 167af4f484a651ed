"""Running every check on an algorithm, as River's ``check_estimator`` does."""

from __future__ import annotations

import pytest

import streamfit.checks
from streamfit.algorithms.kmeans import KMeans
from streamfit.checks import check_algorithm, yield_checks


class Underestimates(KMeans):
    def state_bytes(self, n_features: int) -> int:
        return super().state_bytes(n_features) // 2


def test_the_quick_checks_come_first_and_only_the_memory_check_is_slow() -> None:
    checks = list(yield_checks(KMeans))
    assert [c.name for c in checks if c.slow] == ["peak_memory_flat"] == [checks[-1].name]
    assert [c.trains for c in checks[:3]] == [False] * 3
    assert len({c.name for c in checks}) == len(checks)


def test_check_algorithm_names_the_algorithm_and_the_check_that_failed() -> None:
    with pytest.raises(AssertionError, match=r"^Underestimates fails state_bytes: state_bytes"):
        check_algorithm(Underestimates, slow=False)


def test_everything_exported_exists() -> None:
    for name in streamfit.checks.__all__:
        assert hasattr(streamfit.checks, name), name
    assert sorted(streamfit.checks.__all__) == streamfit.checks.__all__
