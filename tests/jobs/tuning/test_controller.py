"""The tuning step over a real store (SQLite and PostgreSQL) with Optuna's storage in it, and
trials run by the in-memory backend: each trial writes the metrics a trainer would."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa

from streamfit.jobs.backends.base import RunRequest
from streamfit.jobs.backends.memory import Exit
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.status import Status
from streamfit.jobs.store import Store
from streamfit.jobs.tables import notifications
from streamfit.jobs.tuning import Tunings, TuningSpec, TuningStatus, tuning_step
from streamfit.jobs.tuning.controller import LEASE_SECONDS, _study
from streamfit.jobs.tuning.study import distributions, open_storage
from tests.jobs.conftest import Fake
from tests.jobs.tuning.settle import settle


def _spec(**kw: Any) -> TuningSpec:
    raw = {
        "name": "sweep",
        "owner": "a@example.com",
        "command": ["train"],
        "search": {
            "x": {"continuous": [0.0, 1.0], "steps": 5},
            "kind": {"categorical": ["a", "b"]},
        },
        "objective": {"metric": "validation:score", "direction": "maximize"},
        "strategy": "random",
        "max_jobs": 6,
        "max_parallel_jobs": 2,
        "seed": 1,
        "notify": {"console": True},
        **kw,
    }
    return TuningSpec.from_raw(raw, "sweep.yaml")


def _score(env: dict[str, str]) -> float:
    x = float(env["STREAMFIT_HP_X"])
    return -((x - 0.7) ** 2) + (0.1 if env["STREAMFIT_HP_KIND"] == "b" else 0.0)


def _script(fail: set[str] | None = None) -> Any:
    """Each run writes ``metrics.json`` as a trainer would, then exits after 5 s; a run whose
    trial is in ``fail`` exits 1 instead."""

    def run(request: RunRequest) -> Exit:
        env = request.job_env
        if fail and env["STREAMFIT_HP_KIND"] in fail:
            return Exit(1, "boom\n", after=5)
        out = Path(env["STREAMFIT_OUTPUT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        metrics = {"validation:score": _score(env), "train:rows": 100.0}
        (out / "metrics.json").write_text(json.dumps(metrics))
        return Exit(0, after=5)

    return run


def _settle(fake: Fake, tunings: Tunings, tuning_id: int, ticks: int = 200) -> int:
    return settle(fake, tunings, tuning_id, ticks)


def test_a_tuning_job_runs_its_trials_as_jobs_and_ends_with_the_best(fake: Fake) -> None:
    fake.backend.script = _script()
    tunings = Tunings(fake.ctx.store)
    tuning = tunings.create(_spec(), fake.clock.now())
    most_running = _settle(fake, tunings, tuning.id)
    done = tunings.get(tuning.id)
    trials = tunings.trials(done.id)
    assert done.status == TuningStatus.COMPLETED and done.trials == 6 == len(trials)
    assert done.completed == 6 and done.failed == 0
    assert most_running == 2  # max_parallel_jobs
    points = {
        (j.spec["hyperparameters"]["x"], j.spec["hyperparameters"]["kind"]) for j in trials.values()
    }
    assert len(points) == 6  # drawn afresh on every pass
    jobs = [fake.ctx.store.get(j.id) for j in trials.values()]
    assert all(j.status == Status.COMPLETED for j in jobs)
    assert {j.tags["tuning"] for j in jobs} == {str(done.id)}
    assert sorted(int(j.tags["trial"]) for j in jobs) == sorted(trials)
    values = {n: j.metrics["validation:score"] for n, j in trials.items() if j.metrics}
    best = max(values, key=lambda n: values[n])
    assert done.best_trial == best and done.best_value == pytest.approx(values[best])
    assert done.best_job_id == trials[best].id
    assert done.best_params == {
        "x": trials[best].spec["hyperparameters"]["x"],
        "kind": trials[best].spec["hyperparameters"]["kind"],
    }
    # Optuna's study agrees: every trial told, the same best
    study = optuna.load_study(study_name=done.study, storage=open_storage(fake.ctx.store))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    assert study.best_value == pytest.approx(done.best_value)
    # one digest, to the console, recorded with the end
    with fake.ctx.store.engine.connect() as conn:
        rows = conn.execute(sa.select(notifications.c.key, notifications.c.channel)).all()
    assert rows == [(f"tuning:{done.id}", "console")]


def test_failed_trials_are_told_failed_and_an_all_failed_tuning_job_fails(fake: Fake) -> None:
    fake.backend.script = _script(fail={"a"})
    spec = _spec(retry={"algorithm": 0})
    tunings = Tunings(fake.ctx.store)
    tuning = tunings.create(spec, fake.clock.now())
    _settle(fake, tunings, tuning.id)
    done = tunings.get(tuning.id)
    kinds = {n: j.spec["hyperparameters"]["kind"] for n, j in tunings.trials(done.id).items()}
    assert done.status == TuningStatus.COMPLETED
    assert done.failed == sum(1 for k in kinds.values() if k == "a") > 0
    assert done.completed == sum(1 for k in kinds.values() if k == "b")
    assert done.best_params is not None and done.best_params["kind"] == "b"
    study = optuna.load_study(study_name=done.study, storage=open_storage(fake.ctx.store))
    states = {t.number: t.state.name for t in study.trials}
    assert all(states[n] == ("FAIL" if k == "a" else "COMPLETE") for n, k in kinds.items())

    only_a = spec.model_copy(
        update={
            "search": {
                **spec.search,
                "kind": spec.search["kind"].model_copy(update={"categorical": ["a"]}),
            }
        }
    )
    failing = tunings.create(only_a, fake.clock.now())
    _settle(fake, tunings, failing.id)
    ended = tunings.get(failing.id)
    assert ended.status == TuningStatus.FAILED and ended.failed == 6 and ended.best_value is None


def test_a_grid_runs_every_point_once_and_stops_at_its_size(fake: Fake) -> None:
    fake.backend.script = _script()
    tunings = Tunings(fake.ctx.store)
    tuning = tunings.create(_spec(strategy="grid", max_jobs=50), fake.clock.now())
    _settle(fake, tunings, tuning.id)
    done = tunings.get(tuning.id)
    points = sorted(
        (j.spec["hyperparameters"]["x"], j.spec["hyperparameters"]["kind"])
        for j in tunings.trials(done.id).values()
    )
    assert done.trials == 10 and len(set(points)) == 10  # 5 x 2 points, each once
    assert done.best_params == {"x": 0.75, "kind": "b"}


def test_stop_stops_the_running_trials_and_asks_for_no_more(fake: Fake) -> None:
    fake.backend.script = lambda request: None  # the runs go on until stopped
    tunings = Tunings(fake.ctx.store)
    tuning = tunings.create(_spec(), fake.clock.now())
    scheduler = Scheduler(fake.ctx)
    for _ in range(3):
        scheduler.tick()
    assert len(fake.ctx.store.active()) == 2
    tunings.request_stop(tuning.id)
    _settle(fake, tunings, tuning.id)
    done = tunings.get(tuning.id)
    assert done.status == TuningStatus.STOPPED and done.trials == 2
    assert {j.status for j in tunings.trials(done.id).values()} == {Status.STOPPED}


def _tick_steps(fake: Fake, store: Store) -> None:
    """The job steps (not the tuning step), with a store of their own."""
    ctx = fake.ctx
    scheduler = Scheduler(type(ctx)(store, ctx.backend, ctx.home, ctx.clock, ctx.rand))
    for step in scheduler.steps:
        if step.name != "tuning":
            step.run()


def test_a_pass_that_dies_after_asking_loses_and_duplicates_no_trial(fake: Fake) -> None:
    fake.backend.script = _script()
    url = fake.ctx.store.url
    tunings = Tunings(fake.ctx.store)
    tuning = tunings.create(_spec(max_jobs=4, max_parallel_jobs=2), fake.clock.now())
    storage = open_storage(fake.ctx.store)
    # A pass that leased the tuning job, created its study and asked for a trial, then died
    # before submitting its job; and one more asked and submitted, then died before linking.
    held = tunings.lease(tuning, fake.clock.now(), LEASE_SECONDS)
    assert held is not None
    study = _study(storage, held, held.spec_model(), tunings)
    dists = distributions(held.spec_model())
    lost = study.ask(dists)
    unlinked = study.ask(dists)
    spec = held.spec_model()
    tags = {"tuning": str(held.id), "trial": str(unlinked.number)}
    fake.ctx.store.submit([spec.trial_job(unlinked.params, "sweep-x", tags)], fake.clock.now())
    # Another scheduler meanwhile finds it held, and does nothing.
    assert tuning_step(fake.ctx) == 0
    # After the lease ran out, a scheduler with a store of its own takes over.
    fake.clock.advance(LEASE_SECONDS + 1)
    fresh = Store(url)
    try:
        ctx = type(fake.ctx)(fresh, fake.ctx.backend, fake.ctx.home, fake.clock, fake.ctx.rand)
        for _ in range(100):
            tuning_step(ctx)
            _tick_steps(fake, fresh)
            if Tunings(fresh).get(tuning.id).final:
                break
            fake.clock.advance(1.0)
        done = Tunings(fresh).get(tuning.id)
        trials = Tunings(fresh).trials(tuning.id)
    finally:
        fresh.close()
    assert done.status == TuningStatus.COMPLETED and done.trials == 4
    assert sorted(trials) == [0, 1, 2, 3]  # the lost ask and the unlinked job are trials 0, 1
    assert trials[lost.number].spec["hyperparameters"]["x"] == lost.params["x"]
    assert len(fake.ctx.store.find()) == 4  # the unlinked job was linked, not run again
    assert all(count == 1 for count in fake.backend.launches.values())


def test_every_pass_of_a_crash_at_any_step_adds_up_to_the_same_trials(fake: Fake) -> None:
    """Passes run from a fresh store object each time (as after a crash), interleaved with the
    job steps: the count, the trials and the best are those of one uninterrupted run."""
    fake.backend.script = _script()
    tunings = Tunings(fake.ctx.store)
    tuning = tunings.create(_spec(max_jobs=5), fake.clock.now())
    for _ in range(200):
        fresh = Store(fake.ctx.store.url)
        ctx = type(fake.ctx)(fresh, fake.ctx.backend, fake.ctx.home, fake.clock, fake.ctx.rand)
        tuning_step(ctx)
        tuning_step(ctx)  # twice: the second finds nothing more to do
        fresh.close()
        _tick_steps(fake, fake.ctx.store)
        if tunings.get(tuning.id).final:
            break
        fake.clock.advance(1.0)
    done = tunings.get(tuning.id)
    assert done.status == TuningStatus.COMPLETED and done.trials == 5
    assert len(fake.ctx.store.find()) == 5
    values = [j.metrics["validation:score"] for j in tunings.trials(done.id).values() if j.metrics]
    assert done.best_value == pytest.approx(max(values))
    assert not math.isnan(done.best_value)


def test_warm_start_seeds_the_study_with_earlier_completed_trials(fake: Fake) -> None:
    fake.backend.script = _script()
    tunings = Tunings(fake.ctx.store)
    first = tunings.create(_spec(max_jobs=3), fake.clock.now())
    _settle(fake, tunings, first.id)
    second = tunings.create(
        _spec(max_jobs=2, warm_start=[first.id], strategy="bayesian"), fake.clock.now()
    )
    _settle(fake, tunings, second.id)
    done = tunings.get(second.id)
    storage = open_storage(fake.ctx.store)
    study = optuna.load_study(study_name=done.study, storage=storage)
    seeded = [t for t in study.trials if "streamfit_warm_start" in t.user_attrs]
    assert len(seeded) == 3 and len(study.trials) == 5
    assert done.trials == 2 and len(tunings.trials(done.id)) == 2  # only its own are its trials
