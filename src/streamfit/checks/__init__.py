"""Checks every algorithm must pass, shipped with the library (as River's ``river.checks``).

Each check is a plain function of an algorithm class that raises AssertionError when the
algorithm breaks a promise of the computational model: a checkpoint gives back the same model,
resuming equals not stopping, a seed fixes the result, the input is read once an epoch, a merge
is as good as one pass, memory is fixed at ``init_state``. The algorithm says how to train it
on small data in its ``check_parameters`` (a :class:`CheckParameters`), and
:func:`check_algorithm` runs them all::

    from streamfit.checks import check_algorithm
    check_algorithm(MyAlgorithm)            # or device="cuda"

The test suite runs :func:`yield_checks` on every registered algorithm, so registering one is
what brings it under the checks.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from streamfit.checks.data import (
    AlgorithmClass,
    CheckData,
    check_parameters,
    make_check_data,
    parameters_of,
)
from streamfit.checks.hyperparameters import check_floats_refuse_non_finite
from streamfit.checks.memory import (
    check_oversized_state_refused,
    check_peak_memory_flat,
    check_state_bytes,
)
from streamfit.checks.training import (
    assert_same_state,
    check_checkpoint_round_trip,
    check_merge_within_tolerance,
    check_reads_input_once_per_epoch,
    check_resume_equals_uninterrupted,
    check_seeding,
)
from streamfit.core.check_parameters import CheckParameters, GeneratedData

__all__ = [
    "Check",
    "CheckData",
    "CheckParameters",
    "GeneratedData",
    "assert_same_state",
    "check_algorithm",
    "check_checkpoint_round_trip",
    "check_floats_refuse_non_finite",
    "check_merge_within_tolerance",
    "check_oversized_state_refused",
    "check_parameters",
    "check_peak_memory_flat",
    "check_reads_input_once_per_epoch",
    "check_resume_equals_uninterrupted",
    "check_seeding",
    "check_state_bytes",
    "make_check_data",
    "yield_checks",
]


@dataclass(frozen=True)
class Check:
    """One check, ready to run on an algorithm: ``check(algorithm, data, device=...)``."""

    name: str
    function: Callable[..., None]
    #: Whether it trains on :class:`CheckData` (else it needs none).
    trains: bool = True
    #: Whether it takes more than a few seconds (the memory check trains on 10^6 rows).
    slow: bool = False

    def __call__(
        self, algorithm: AlgorithmClass, data: CheckData | None = None, *, device: str = "cpu"
    ) -> None:
        if self.trains:
            self.function(algorithm, data, device=device)
        elif self.slow:
            self.function(algorithm, device=device)
        else:
            self.function(algorithm)


def yield_checks(algorithm: AlgorithmClass) -> Iterator[Check]:
    """Every check that applies to ``algorithm``, the quick ones first.

    >>> from streamfit import get_algorithm
    >>> [c.name for c in yield_checks(get_algorithm("kmeans"))][:3]
    ['state_bytes', 'floats_refuse_non_finite', 'oversized_state_refused']
    """
    parameters_of(algorithm)  # no parameters, no checks: say so before anything runs
    yield Check("state_bytes", check_state_bytes, trains=False)
    yield Check("floats_refuse_non_finite", check_floats_refuse_non_finite, trains=False)
    yield Check("oversized_state_refused", check_oversized_state_refused, trains=False)
    yield Check("checkpoint_round_trip", check_checkpoint_round_trip)
    for epochs in (1, 2):
        resume = functools.partial(check_resume_equals_uninterrupted, epochs=epochs)
        yield Check(f"resume_equals_uninterrupted[epochs={epochs}]", resume)
    yield Check("seeding", check_seeding)
    yield Check("reads_input_once_per_epoch", check_reads_input_once_per_epoch)
    yield Check("merge_within_tolerance", check_merge_within_tolerance)
    yield Check("peak_memory_flat", check_peak_memory_flat, trains=False, slow=True)


def check_algorithm(
    algorithm: AlgorithmClass,
    *,
    device: str = "cpu",
    data: CheckData | None = None,
    slow: bool = True,
) -> list[str]:
    """Run every check on ``algorithm`` (on ``data``, else on data of its own written to a
    temporary folder); returns the names of the checks run, or raises AssertionError naming
    the first that failed. ``slow=False`` leaves out the memory check (a minute or so)."""
    checks = [c for c in yield_checks(algorithm) if slow or not c.slow]
    with tempfile.TemporaryDirectory(prefix="streamfit-checks-") as folder:
        if data is None:
            data = make_check_data(folder, parameters_of(algorithm).data)
        for check in checks:
            _run(check, algorithm, data, device)
    return [c.name for c in checks]


def _run(check: Check, algorithm: AlgorithmClass, data: CheckData, device: str) -> None:
    try:
        check(algorithm, data, device=device)
    except AssertionError as exc:
        raise AssertionError(f"{algorithm.__name__} fails {check.name}: {exc}") from exc
