"""Checks of an algorithm's hyperparameters."""

from __future__ import annotations

from streamfit.checks.data import AlgorithmClass, expect, parameters_of
from streamfit.errors import ConfigError

__all__ = ["check_floats_refuse_non_finite"]


def check_floats_refuse_non_finite(algorithm: AlgorithmClass) -> None:
    """Every float hyperparameter refuses ``nan``, ``inf`` and ``-inf`` with a ConfigError
    that names it and the value."""
    base = parameters_of(algorithm).hyperparameters
    fields = algorithm.hyperparameters_class.model_fields
    floats = [name for name, info in fields.items() if "float" in str(info.annotation)]
    for name in floats:
        for bad in ("nan", "inf", "-inf"):
            try:
                algorithm({**base, name: bad})
            except ConfigError as exc:
                expect(
                    f"'{name}'='{bad}'" in str(exc),
                    f"refusing {name}={bad}, the message does not name it: {exc}",
                )
                continue
            raise AssertionError(f"{algorithm.name}: {name}={bad} was accepted")
