"""The candidates that train together: candidate 0 is the hyperparameters as given, the others
its neighbours in learning rate, weight decay and initial scale.

>>> from streamfit.algorithms.factorization_machines.hyperparameters import (
...     FactorizationMachinesHyperparameters)
>>> hp = FactorizationMachinesHyperparameters(feature_dim=8, num_factors=2,
...                                           predictor_type="binary_classifier")
>>> grid = candidate_grid(hp, 3)
>>> grid.linear_lr[0], grid.factors_lr[0], grid.factors_init_sigma[0]
(0.05, 0.02, 0.001)
>>> len(set(zip(*vars(candidate_grid(hp, 12)).values())))  # beyond 8, still all different
12
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from streamfit.algorithms.factorization_machines.hyperparameters import (
    FactorizationMachinesHyperparameters,
)

__all__ = ["Candidates", "candidate_grid"]

#: (linear_lr, factors_lr, factors_wd, factors_init_sigma) multipliers of candidates 1-7,
#: from sweeps of 30 candidates on MovieLens, InstEval and flights (README): factors_lr is
#: the setting that matters most; in one pass faster factors from a larger start won on
#: MovieLens, more factor decay on flights; over 10 epochs lower rates and 100x the decay.
STEPS = (
    (0.5, 2.0, 1.0, 10.0),
    (2.0, 4.0, 1.0, 1.0),
    (1.0, 1.0, 10.0, 10.0),
    (0.5, 0.5, 10.0, 1.0),
    (1.0, 1.0, 100.0, 1.0),
    (0.25, 0.25, 1.0, 1.0),
    (0.25, 1.0, 1.0, 1.0),
)


@dataclass(frozen=True)
class Candidates:
    """Each candidate's settings, one list entry per candidate."""

    linear_lr: list[float]
    factors_lr: list[float]
    linear_wd: list[float]
    factors_wd: list[float]
    factors_init_sigma: list[float]

    def row(self, i: int) -> dict[str, float]:
        """Candidate ``i``'s settings by hyperparameter name."""
        return {name: values[i] for name, values in asdict(self).items()}


def _steps(m: int) -> list[tuple[float, float, float, float]]:
    """Multipliers of ``m`` candidates: :data:`STEPS` first, then learning rates spread
    evenly in log scale from 1/8 to 4 times, every other with 10 times the initial scale."""
    out = [(1.0, 1.0, 1.0, 1.0), *STEPS][:m]
    extra = m - len(out)
    for j in range(extra):
        frac = (j + 0.5) / extra
        rate = 2.0 ** (-3 + 5 * frac)
        out.append((rate, rate, 1.0, 10.0 if j % 2 else 1.0))
    return out


def candidate_grid(hp: FactorizationMachinesHyperparameters, m: int) -> Candidates:
    """The settings of ``m`` candidates around ``hp``'s (candidate 0: ``hp``'s own)."""
    steps = _steps(m)
    wd = hp.factors_wd
    return Candidates(
        linear_lr=[hp.linear_lr * a for a, _, _, _ in steps],
        factors_lr=[hp.factors_lr * b for _, b, _, _ in steps],
        linear_wd=[hp.linear_wd] * m,
        # A multiple of no decay is none: decay steps from the default's instead.
        factors_wd=[(wd if wd > 0 else 1e-5) * c if c != 1 else wd for _, _, c, _ in steps],
        factors_init_sigma=[hp.factors_init_sigma * s for _, _, _, s in steps],
    )
