"""The tuning step's pass for multi-fidelity tuning (``strategy: hyperband``, or
``early_stopping: auto`` with another strategy's sampler): promotion-type Hyperband over
trials that pause at rungs and resume from their checkpoints.

A trial's first job trains to the lowest rung's budget (``resource.hyperparameter``, e.g.
``epochs=1``) and completes: the trial is paused, its state is its checkpoint, and it holds
no capacity. When a slot is free, :func:`~streamfit.jobs.tuning.hyperband.promotion` picks a
paused trial to resume: a new job of the job manager with the next rung's budget, whose
checkpoint folder is given a copy of the paused job's checkpoints before it can launch, so
the trainer resumes where the trial paused (``epochs`` trains further passes; it never starts
again at zero). Optuna is told each rung's objective as an intermediate value, the top rung's
as the trial's value; trials still paused when the tuning job ends are told pruned.

A promoted job is submitted due :data:`PROMOTION_DELAY` seconds later and its checkpoints are
copied in the same pass, so no scheduler launches it before they are in place; a pass that
dies in between leaves it New with an empty folder, and the next pass copies them. One that
dies after submitting it and before linking it leaves a job the next pass finds by its tags
(``tuning``, ``trial``, ``rung``) and links instead of promoting the trial twice.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from streamfit.jobs.context import StepContext
from streamfit.jobs.records import Job
from streamfit.jobs.runs import job_paths
from streamfit.jobs.status import Status
from streamfit.jobs.tuning.hyperband import promotion
from streamfit.jobs.tuning.progress import Best, objective_value, record_progress, submit_trial
from streamfit.jobs.tuning.records import TuningJob
from streamfit.jobs.tuning.spec import TuningSpec
from streamfit.jobs.tuning.store import Tunings
from streamfit.jobs.tuning.study import distributions, sampler

if TYPE_CHECKING:
    import optuna

__all__ = ["PROMOTION_DELAY", "advance_rungs"]

log = logging.getLogger(__name__)

#: Seconds a promoted job waits before its first launch: its checkpoints are copied first.
PROMOTION_DELAY = 2.0


def advance_rungs(
    ctx: StepContext, tunings: Tunings, tuning: TuningJob, spec: TuningSpec, study: optuna.Study
) -> int:
    """One pass over a multi-fidelity tuning job; returns the trials told, jobs submitted,
    and 1 if it ended."""
    import optuna
    from optuna.trial import TrialState

    levels = spec.resource.levels()
    name = spec.resource.hyperparameter
    maximize = spec.objective.direction == "maximize"
    jobs = tunings.rungs(tuning.id)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    results: dict[int, dict[int, float | None]] = {}
    for (trial, rung), job in jobs.items():
        if job.final:
            results.setdefault(trial, {})[rung] = objective_value(job, spec.objective)
    work = 0
    for (trial, rung), job in sorted(jobs.items()):  # tell, lowest rung first
        frozen = trials[trial]
        if not job.final or frozen.state != TrialState.RUNNING:
            continue
        value = results[trial][rung]
        if value is None:
            study.tell(trial, state=TrialState.FAIL)
            frozen = trials[trial] = study._storage.get_trial(frozen._trial_id)
        elif rung == len(levels) - 1:
            study.tell(trial, value)
        elif levels[rung] not in frozen.intermediate_values:
            study._storage.set_trial_intermediate_value(frozen._trial_id, levels[rung], value)
        else:
            continue
        work += 1
    dists = distributions(spec)
    first = {trial for trial, rung in jobs if rung == 0}
    for number, frozen in trials.items():  # a trial asked for by a pass that died
        if frozen.state != TrialState.RUNNING or number in first:
            continue
        if set(frozen.params) != set(dists):
            study.tell(number, state=TrialState.FAIL)
            continue
        params = {**frozen.params, name: levels[0]}
        jobs[number, 0] = submit_trial(ctx, tunings, tuning, spec, number, params, recover=True)
        first.add(number)
        work += 1
    for (trial, rung), job in jobs.items():  # checkpoints a dead pass did not copy
        if rung and job.status == Status.NEW and job.attempt == 1:
            _carry(ctx, jobs[trial, rung - 1], job)
    running = sum(1 for job in jobs.values() if not job.final)
    failed = {n for n, t in trials.items() if t.state == TrialState.FAIL}
    live = {t: r for t, r in results.items() if t not in failed}
    if tuning.stop_requested:
        for job in jobs.values():
            if not job.final and not job.stop_requested:
                ctx.store.request_stop(job.id)
    else:
        asking = None
        while running < spec.max_parallel_jobs:
            promote = promotion(
                live, set(jobs), len(levels), spec.resource.reduction_factor, maximize
            )
            if promote is not None:
                trial, rung = promote
                params = {**trials[trial].params, name: levels[rung]}
                # (recover: a pass that died after submitting this promotion, before linking
                # it, left its job; a promotion is rare enough to look for it every time)
                job = submit_trial(
                    ctx,
                    tunings,
                    tuning,
                    spec,
                    trial,
                    params,
                    rung=rung,
                    due_in=PROMOTION_DELAY,
                    recover=True,
                )
                _carry(ctx, jobs[trial, rung - 1], job)
                jobs[trial, rung] = job
            elif len(first) < spec.trial_budget():
                if asking is None:
                    asked_so_far = len(trials)  # (a pass that asks moves it on)
                    asking = optuna.load_study(
                        study_name=tuning.study,
                        storage=study._storage,
                        sampler=sampler(spec, asked_so_far),
                    )
                asked = asking.ask(dists)
                params = {**asked.params, name: levels[0]}
                jobs[asked.number, 0] = submit_trial(
                    ctx, tunings, tuning, spec, asked.number, params
                )
                first.add(asked.number)
            else:
                break
            running += 1
            work += 1
    ended = running == 0 and (
        tuning.stop_requested
        or (
            len(first) >= spec.trial_budget()
            and promotion(live, set(jobs), len(levels), spec.resource.reduction_factor, maximize)
            is None
        )
    )
    if ended:  # the trials still paused were stopped early: pruned, at their last rung
        for number in first:
            if study._storage.get_trial(trials[number]._trial_id).state == TrialState.RUNNING:
                study.tell(number, state=TrialState.PRUNED)
    best = _best(live, jobs, trials, maximize, name)
    completed = sum(1 for t, r in live.items() if r.get(len(levels) - 1) is not None)
    return work + record_progress(
        ctx, tunings, tuning, spec, len(first), completed, len(failed), best, ended
    )


def _best(
    results: dict[int, dict[int, float | None]],
    jobs: dict[tuple[int, int], Job],
    trials: dict[int, optuna.trial.FrozenTrial],
    maximize: bool,
    name: str,
) -> Best | None:
    """The best trial at the highest rung any trial reached (a lower rung's objective, after
    less training, is not comparable with it)."""
    reached = [
        (rung, value, trial)
        for trial, r in results.items()
        for rung, value in r.items()
        if value is not None
    ]
    if not reached:
        return None
    top = max(rung for rung, _, _ in reached)
    at_top = [(value, trial) for rung, value, trial in reached if rung == top]
    value, trial = sorted(at_top, key=lambda vt: ((-vt[0] if maximize else vt[0]), vt[1]))[0]
    params = dict(trials[trial].params)
    params[name] = jobs[trial, top].spec["hyperparameters"][name]
    return Best(trial, value, params, jobs[trial, top].id)


def _carry(ctx: StepContext, paused: Job, resumed: Job) -> None:
    """Give ``resumed`` (New, not yet launched) a copy of ``paused``'s checkpoints, unless its
    folder has some already."""
    source = Path(paused.checkpoint_uri) if paused.checkpoint_uri else None
    _, target = job_paths(resumed, ctx.home)
    if source is None or not source.is_dir():
        log.warning("job %d: no checkpoints of job %d to resume from", resumed.id, paused.id)
        return
    if target.is_dir() and any(target.iterdir()):
        return
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)  # (empty)
    staging.rename(target)  # whole or not at all: a crash mid-copy leaves no half folder
