"""The tuning step: tell Optuna how finished trials did, ask it for new ones, run them as jobs.

One pass over every Running tuning job that no other scheduler holds (each is leased for the
pass: :mod:`~streamfit.jobs.tuning.store`):

1. **Tell.** A trial whose job has ended for good is told to its study: the job's objective
   metric, or failed (the job failed, stopped, or recorded no such metric). Only a trial
   Optuna still holds Running is told, so telling twice is impossible.
2. **Recover.** A trial Optuna holds Running but no job runs was asked for by a pass that died
   before it linked the trial's job: its job is found by its tags (it was submitted) or
   submitted now with the parameters Optuna recorded. No trial is lost or run twice.
3. **Ask.** New trials, up to ``max_parallel_jobs`` running and the trial budget
   (``max_jobs``, or a smaller grid), each submitted as a job of the job manager (tagged
   ``tuning`` and ``trial``) and then linked; retries, failure kinds and history apply to it
   as to any job. A stop asked for asks for nothing and stops the running trials.
4. **End.** Once every trial has ended: Completed with the best trial (Failed if none gave
   the objective, Stopped if asked), and the digest's notification rows in that transaction.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from streamfit.jobs.context import StepContext
from streamfit.jobs.records import Job
from streamfit.jobs.tuning.multifidelity import advance_rungs
from streamfit.jobs.tuning.post_training import run_of, tell_points
from streamfit.jobs.tuning.progress import Best, objective_value, record_progress, submit_trial
from streamfit.jobs.tuning.records import TuningJob
from streamfit.jobs.tuning.spec import TuningSpec
from streamfit.jobs.tuning.store import Tunings
from streamfit.jobs.tuning.study import asked_distributions, distributions, open_storage, sampler

if TYPE_CHECKING:
    import optuna

__all__ = ["LEASE_SECONDS", "objective_value", "tuning_step"]

log = logging.getLogger(__name__)

#: How long a pass may hold a tuning job: far longer than a pass takes. (A scheduler that
#: died holding it is passed over at once on its own host: this is for other hosts.)
LEASE_SECONDS = 60.0
#: The user attribute of a study's trials added from an earlier tuning job.
_WARM = "streamfit_warm_start"


def tuning_step(ctx: StepContext, limit: int = 100) -> int:
    """One pass; returns the trials told, submitted and tuning jobs ended."""
    tunings = Tunings(ctx.store)
    done = 0
    for tuning in tunings.due(ctx.clock.now(), limit):
        held = tunings.lease(tuning, ctx.clock.now(), LEASE_SECONDS)
        if held is None:  # another scheduler took it first
            continue
        done += _advance(ctx, tunings, held)
    return done


def _advance(ctx: StepContext, tunings: Tunings, tuning: TuningJob) -> int:
    import optuna
    from optuna.trial import TrialState

    spec = tuning.spec_model()
    storage = open_storage(ctx.store)
    study = _study(storage, tuning, spec, tunings)
    if spec.multi_fidelity:
        return advance_rungs(ctx, tunings, tuning, spec, study)
    linked = tunings.trials(tuning.id)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    work = 0
    swept = spec.swept
    for number, job in linked.items():  # 1. tell
        if job.final and trials[number].state == TrialState.RUNNING and swept is not None:
            tell_points(study, trials[number], job, spec)  # each model of its run a trial
            work += 1
        elif job.final and trials[number].state == TrialState.RUNNING:
            value = objective_value(job, spec.objective)
            if value is None:
                study.tell(number, state=TrialState.FAIL)
            else:
                study.tell(number, value)
            work += 1
    dists = asked_distributions(spec)
    for number, trial in trials.items():  # 2. recover
        if trial.state != TrialState.RUNNING or number in linked:
            continue
        if set(trial.params) != set(dists):  # died while Optuna sampled it: never a job
            study.tell(number, state=TrialState.FAIL)
            continue
        linked[number] = submit_trial(
            ctx, tunings, tuning, spec, number, trial.params, recover=True
        )
        work += 1
    running = [job for job in linked.values() if not job.final]
    if tuning.stop_requested:
        for job in running:
            if not job.stop_requested:
                ctx.store.request_stop(job.id)
    else:  # 3. ask
        want = min(spec.max_parallel_jobs - len(running), spec.trial_budget() - len(linked))
        if want > 0:
            asked_so_far = len(trials)  # (a pass that asks moves it on)
            asking = optuna.load_study(
                study_name=tuning.study, storage=storage, sampler=sampler(spec, asked_so_far)
            )
            for _ in range(want):
                asked = asking.ask(dists)
                linked[asked.number] = submit_trial(
                    ctx, tunings, tuning, spec, asked.number, asked.params
                )
                work += 1
    return work + _progress(ctx, tunings, tuning, spec, study, linked)


def _study(
    storage: optuna.storages.RDBStorage, tuning: TuningJob, spec: TuningSpec, tunings: Tunings
) -> optuna.Study:
    """The tuning job's study, made on its first pass and seeded from ``warm_start``."""
    import optuna

    telling = optuna.samplers.RandomSampler()  # (a grid's sampler would stop the study)
    try:  # (not create_study first: on PostgreSQL its failed insert is logged every pass)
        study = optuna.load_study(study_name=tuning.study, storage=storage, sampler=telling)
    except KeyError:
        study = optuna.create_study(
            study_name=tuning.study,
            storage=storage,
            sampler=telling,
            direction=spec.objective.direction,
            load_if_exists=True,  # (two passes may make it at once after a lease ran out)
        )
    if spec.warm_start and not study.user_attrs.get("seeded"):
        _seed(study, tuning.id, spec, tunings)
        study.set_user_attr("seeded", True)
    return study


def _seed(study: optuna.Study, tuning_id: int, spec: TuningSpec, tunings: Tunings) -> None:
    """Add the completed trials of the earlier tuning jobs whose parameters lie in this
    search space; each once (a pass that died midway added some: those are skipped)."""
    import optuna
    from optuna.trial import TrialState

    dists = distributions(spec)
    added = {t.user_attrs.get(_WARM) for t in study.get_trials(deepcopy=False)}
    for earlier_id in spec.warm_start:
        earlier = tunings.get(earlier_id)
        if earlier.spec_model().objective != spec.objective:
            log.warning("tuning job %d: warm start %d has another objective", tuning_id, earlier_id)
            continue
        old = optuna.load_study(study_name=earlier.study, storage=study._storage)
        for trial in old.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            key = f"{earlier_id}:{trial.number}"
            params = {k: v for k, v in trial.params.items() if k in dists}
            if key in added or set(params) != set(dists):
                continue
            if not all(dists[k]._contains(dists[k].to_internal_repr(v)) for k, v in params.items()):
                continue
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=dists,
                    value=trial.value,
                    user_attrs={_WARM: key},
                )
            )


def _progress(
    ctx: StepContext,
    tunings: Tunings,
    tuning: TuningJob,
    spec: TuningSpec,
    study: optuna.Study,
    linked: dict[int, Job],
) -> int:
    """Record the counts and the best trial so far; end the tuning job once every trial has
    ended. Returns 1 if it ended."""
    from optuna.trial import TrialState

    # (with the points a run's sweep added: post_training)
    trials = {t.number: t for t in study.get_trials(deepcopy=False) if run_of(t) in linked}
    valued = [t for t in trials.values() if t.state == TrialState.COMPLETE and t.value is not None]
    best = None
    if valued:
        pick = max if spec.objective.direction == "maximize" else min
        found = pick(valued, key=lambda t: (t.value, -t.number))
        assert found.value is not None
        run = run_of(found)  # (a swept model is named by its run's trial, as tune show lists it)
        best = Best(run, found.value, dict(found.params), linked[run].id)
    ended = all(j.final for j in linked.values()) and all(
        t.state.is_finished() for t in trials.values()
    )
    ended = ended and (tuning.stop_requested or len(linked) >= spec.trial_budget())
    failed = sum(1 for t in trials.values() if t.state == TrialState.FAIL)
    return record_progress(  # (each point of a run's sweep a trial)
        ctx, tunings, tuning, spec, len(trials), len(valued), failed, best, ended
    )
