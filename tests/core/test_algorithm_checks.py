"""Every registered algorithm passes every check of :mod:`streamfit.checks`.

The checks and each algorithm's small test parameters (``check_parameters`` on its class) live
in the library: registering an algorithm is what brings it under them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from streamfit import algorithm_names, get_algorithm
from streamfit.checks import (
    CheckData,
    CheckParameters,
    GeneratedData,
    make_check_data,
    yield_checks,
)
from streamfit.checks.data import parameters_of

NAMES = algorithm_names()
#: Where the checks train: ``STREAMFIT_TEST_DEVICE=cuda`` runs them on a GPU (benchmarks/gpu.sh).
DEVICE = os.environ.get("STREAMFIT_TEST_DEVICE", "cpu")

CHECKS = [
    pytest.param(
        name, check, id=f"{name}:{check.name}", marks=[pytest.mark.slow] if check.slow else []
    )
    for name in NAMES
    # One without parameters fails test_every_algorithm_has_a_case, not the collection.
    if isinstance(getattr(get_algorithm(name), "check_parameters", None), CheckParameters)
    for check in yield_checks(get_algorithm(name))
]


def test_every_algorithm_has_a_case() -> None:
    """Its check parameters, on its class."""
    for name in NAMES:
        parameters_of(get_algorithm(name))


@pytest.fixture(scope="session")
def check_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[[GeneratedData], CheckData]:
    """The checks' data, written once per session for each data set an algorithm names."""
    written: dict[str, CheckData] = {}

    def data(spec: GeneratedData) -> CheckData:
        key = repr(spec)  # unhashable: its options are a dict
        if key not in written:
            written[key] = make_check_data(tmp_path_factory.mktemp("checks"), spec)
        return written[key]

    return data


@pytest.mark.parametrize(("name", "check"), CHECKS)
def test_algorithm_passes(
    name: str, check: Callable[..., None], check_data: Callable[[GeneratedData], CheckData]
) -> None:
    algorithm = get_algorithm(name)
    check(algorithm, check_data(parameters_of(algorithm).data), device=DEVICE)
