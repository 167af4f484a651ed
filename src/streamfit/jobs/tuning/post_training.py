"""Post-training tuning: the models one trial's run finalized, told to the study as a trial
each.

A searched hyperparameter that a state changes without data (K-Means' ``k``, Linear
Learner's selection criterion: an algorithm's ``post_training`` names) is not asked of
Optuna: each trial's job trains once with the other hyperparameters and sweeps it
(``train --sweep``), and its metrics carry one row per value (``metrics["sweep"]``). When the
job ends, the trial Optuna asked for becomes the first value's point, and every other value
is added to the study as a completed trial of its own (``user_attrs``: the run's trial and
job, the point's index), so the best over all points is chosen and the sampler learns from
each. The points are added before the asked trial is told, each once: a pass that died
midway finds the trial still running and adds only the points it lacks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from streamfit.jobs.records import Job
from streamfit.jobs.status import Status
from streamfit.jobs.tuning.spec import Objective, TuningSpec
from streamfit.jobs.tuning.study import distribution, distributions

if TYPE_CHECKING:
    import optuna

__all__ = ["JOB", "POINT", "RUN", "point_objectives", "run_of", "tell_points"]

#: The user attributes of a swept point: the trial its run was asked as, that run's job, and
#: the point's index in the sweep (0: the asked trial itself).
RUN = "streamfit_run"
JOB = "streamfit_job"
POINT = "streamfit_point"


def point_objectives(job: Job, objective: Objective, count: int) -> list[float | None] | None:
    """Each swept model's objective, in sweep order (None where it has none); None if the
    job did not complete with a sweep of ``count`` models.

    >>> from types import SimpleNamespace as S
    >>> job = S(status=Status.COMPLETED, metrics={"sweep": [
    ...     {"k": 2, "test:msd": 4.0}, {"k": 3, "test:msd": None}]})
    >>> point_objectives(job, Objective(metric="test:msd"), 2)
    [4.0, None]
    """
    if job.status != Status.COMPLETED or not job.metrics:
        return None
    table = job.metrics.get("sweep")
    if not isinstance(table, list) or len(table) != count:
        return None
    out: list[float | None] = []
    for row in table:
        value = row.get(objective.metric) if isinstance(row, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(None)
        else:
            out.append(float(value) if math.isfinite(value) else None)
    return out


def run_of(trial: optuna.trial.FrozenTrial) -> int:
    """The trial number of the run that gave ``trial`` (its own for an asked trial)."""
    run = trial.user_attrs.get(RUN)
    return int(run) if isinstance(run, int) else trial.number


def tell_points(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, job: Job, spec: TuningSpec
) -> None:
    """Tell ``study`` every model of the ended ``job`` of the asked ``trial`` (still
    running): the points it lacks added, then the trial told as the first point."""
    import optuna
    from optuna.trial import TrialState

    name = spec.swept
    assert name is not None
    values = spec.search[name].sweep_values()
    scores = point_objectives(job, spec.objective, len(values))
    if scores is None:  # the run failed, or gave no sweep: no model to tell of
        study.tell(trial.number, state=TrialState.FAIL)
        return
    full = distributions(spec)
    added = {
        t.user_attrs.get(POINT)
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(RUN) == trial.number
    }
    attrs: dict[str, Any] = {RUN: trial.number, JOB: job.id}
    for index in range(1, len(values)):
        if index in added:
            continue
        score = scores[index]
        study.add_trial(
            optuna.trial.create_trial(
                params={**trial.params, name: values[index]},
                distributions=full,
                value=score,
                state=TrialState.COMPLETE if score is not None else TrialState.FAIL,
                user_attrs={**attrs, POINT: index},
            )
        )
    storage, dist = study._storage, distribution(spec.search[name])
    if name not in trial.params:
        storage.set_trial_param(trial._trial_id, name, dist.to_internal_repr(values[0]), dist)
    for key, value in {**attrs, POINT: 0}.items():
        storage.set_trial_user_attr(trial._trial_id, key, value)
    if scores[0] is None:
        study.tell(trial.number, state=TrialState.FAIL)
    else:
        study.tell(trial.number, scores[0])
