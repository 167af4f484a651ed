"""Tuning jobs: many trials of one job spec, chosen by Optuna, each a job of the job manager.

A tuning spec (:mod:`~streamfit.jobs.tuning.spec`) is stored as a Running tuning job
(:mod:`~streamfit.jobs.tuning.store`); the scheduler's tuning step
(:mod:`~streamfit.jobs.tuning.controller`) asks the study (kept by Optuna in the store's
database: :mod:`~streamfit.jobs.tuning.study`) for trials, submits them as jobs, tells it
their results, and ends the tuning job with its best trial and one digest
(:mod:`~streamfit.jobs.tuning.digest`). With ``strategy: hyperband`` or ``early_stopping:
auto`` its pass is :mod:`~streamfit.jobs.tuning.multifidelity`'s: trials pause at rungs and
only the best resume from their checkpoints (:mod:`~streamfit.jobs.tuning.hyperband`).
"""

from streamfit.jobs.tuning.controller import objective_value, tuning_step
from streamfit.jobs.tuning.digest import budget, digest, trial_rows
from streamfit.jobs.tuning.records import TuningJob, TuningStatus
from streamfit.jobs.tuning.spec import TuningSpec, load_tuning_spec
from streamfit.jobs.tuning.store import Tunings

__all__ = [
    "TuningJob",
    "TuningSpec",
    "TuningStatus",
    "Tunings",
    "budget",
    "digest",
    "load_tuning_spec",
    "objective_value",
    "trial_rows",
    "tuning_step",
]
