"""Tuning jobs as JSON: what ``tune list --json`` and ``tune show --json`` print and the
server's ``/api/tuning`` answers, written once so the two never disagree."""

from __future__ import annotations

from typing import Any

from streamfit.jobs.tuning.digest import TrialRow, budget, trial_rows
from streamfit.jobs.tuning.records import TuningJob
from streamfit.jobs.tuning.store import Tunings
from streamfit.jobs.views import iso

__all__ = ["trial_json", "tuning_detail", "tuning_summary"]


def tuning_summary(tuning: TuningJob) -> dict[str, Any]:
    """A tuning job as ``tune list --json`` prints it."""
    spec = tuning.spec_model()
    return {
        "id": tuning.id,
        "name": tuning.name,
        "owner": tuning.owner,
        "status": tuning.status.value,
        "strategy": spec.strategy,
        "objective": spec.objective.model_dump(),
        "trials": tuning.trials,
        "max_trials": spec.trial_budget(),
        "completed": tuning.completed,
        "failed": tuning.failed,
        "best_trial": tuning.best_trial,
        "best_job_id": tuning.best_job_id,
        "best_value": tuning.best_value,
        "best_params": tuning.best_params,
        "created_at": iso(tuning.created_at),
        "ended_at": iso(tuning.ended_at),
    }


def trial_json(row: TrialRow) -> dict[str, Any]:
    """One trial (one rung of it, under Hyperband) as ``tune show --json`` prints it."""
    return {
        "trial": row.trial,
        "rung": row.rung,
        "job_id": row.job_id,
        "status": row.status,
        "objective": row.value,
        "hyperparameters": row.params,
        "rows": row.rows,
        "seconds": row.seconds,
        # the models of one training run (a swept post-training hyperparameter) share its job
        "point": row.point,
    }


def tuning_detail(tunings: Tunings, tuning_id: int) -> dict[str, Any]:
    """A tuning job with its trials, best first, and the budget they spent (``tune show
    --json``)."""
    tuning = tunings.get(tuning_id)
    rows = trial_rows(tuning, tunings.rungs(tuning_id))
    spent = budget(rows)
    return {
        **tuning_summary(tuning),
        "trials": [trial_json(r) for r in rows],
        "budget": {"rows": spent.rows, "seconds": spent.seconds},
    }
