"""Promotion-type Hyperband over a real store: trials pause at rungs (their jobs complete),
only the best resume, each from the checkpoint of the job before it, never from zero. The
in-memory backend's runs act as a trainer does: they resume from their checkpoint folder,
train to their ``epochs``, and write a checkpoint and their metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna

from streamfit.jobs.backends.base import RunRequest
from streamfit.jobs.backends.memory import Exit
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.tuning import Tunings, TuningSpec, TuningStatus
from streamfit.jobs.tuning.study import open_storage
from tests.jobs.conftest import Fake
from tests.jobs.tuning.settle import settle

ROWS = 1000  # an epoch


def _spec(**kw: Any) -> TuningSpec:
    raw = {
        "name": "hb",
        "owner": "a@example.com",
        "algorithm": "linear-learner",
        "hyperparameters": {"predictor_type": "binary_classifier"},
        "inputs": {"train": "train.parquet"},
        "search": {"learning_rate": {"continuous": [0.001, 1.0], "scaling": "log"}},
        "objective": {"metric": "validation:roc_auc_score", "direction": "maximize"},
        "strategy": "hyperband",
        "resource": {"hyperparameter": "epochs", "min": 1, "max": 9, "reduction_factor": 3},
        "max_jobs": 9,
        "max_parallel_jobs": 3,
        "seed": 2,
        **kw,
    }
    return TuningSpec.from_raw(raw, "hb.yaml")


def _argument(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _trainer(request: RunRequest) -> Exit:
    """Resume from the checkpoint folder (if it holds one), train to ``epochs``, checkpoint,
    and record the objective: better with a learning rate near 0.1 and with more epochs."""
    argv = request.argv
    hp = {
        argv[i + 1].split("=", 1)[0]: argv[i + 1].split("=", 1)[1]
        for i, a in enumerate(argv)
        if a == "--hp"
    }
    epochs, lr = int(hp["epochs"]), float(hp["learning_rate"])
    folder = Path(_argument(argv, "--checkpoint-dir"))
    state = folder / "checkpoint-000000001" / "state.json"
    done = json.loads(state.read_text())["epochs"] if state.exists() else 0
    assert done < epochs
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"epochs": epochs, "learning_rate": lr}))
    out = Path(_argument(argv, "--output"))
    out.mkdir(parents=True, exist_ok=True)
    auc = 0.9 - 0.05 * abs(math.log10(lr) + 1) - 0.1 / epochs
    metrics = {
        "validation:roc_auc_score": auc,
        "train:rows": float(epochs * ROWS),
        "run:rows": float((epochs - done) * ROWS),  # what this run read
        "run:resumed_at": float(done),
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    return Exit(0, after=2.0 * (epochs - done))


def _settle(fake: Fake, tunings: Tunings, tuning_id: int, ticks: int = 400) -> int:
    return settle(fake, tunings, tuning_id, ticks)


def test_only_the_best_resume_each_from_its_checkpoint(fake: Fake) -> None:
    fake.backend.script = _trainer
    tunings = Tunings(fake.ctx.store)
    tuning = tunings.create(_spec(), fake.clock.now())
    most = _settle(fake, tunings, tuning.id)
    done = tunings.get(tuning.id)
    jobs = tunings.rungs(done.id)
    assert done.status == TuningStatus.COMPLETED and done.trials == 9
    assert most <= 3  # paused trials hold no slot
    rates = {j.spec["hyperparameters"]["learning_rate"] for (_, r), j in jobs.items() if r == 0}
    assert len(rates) == 9  # each pass's sampler draws afresh (paused trials are told nothing)
    by_rung = {r: sorted(t for t, rr in jobs if rr == r) for r in range(3)}
    assert len(by_rung[0]) == 9 and len(by_rung[1]) == 3 and len(by_rung[2]) == 1
    for (_, rung), job in jobs.items():
        m = job.metrics or {}
        levels = [1, 3, 9]
        assert job.spec["hyperparameters"]["epochs"] == levels[rung]
        # a resumed trial went on from where it paused: never from zero
        assert m["run:resumed_at"] == (levels[rung - 1] if rung else 0)
        assert m["run:rows"] == (levels[rung] - (levels[rung - 1] if rung else 0)) * ROWS
    # the promoted were the best of their rung
    auc = {k: (j.metrics or {})["validation:roc_auc_score"] for k, j in jobs.items()}
    rung0 = sorted(by_rung[0], key=lambda t: -auc[t, 0])
    assert by_rung[1] == sorted(rung0[:3])
    [top] = by_rung[2]
    assert top == max(by_rung[1], key=lambda t: auc[t, 1])
    assert done.best_trial == top and done.best_value == auc[top, 2]
    assert done.best_params is not None and done.best_params["epochs"] == 9
    # rows read: 9 trials x 1 epoch, 3 x 2 more, 1 x 6 more; a full grid of 9 would read 81
    assert sum((j.metrics or {})["run:rows"] for j in jobs.values()) == (9 + 6 + 6) * ROWS
    study = optuna.load_study(study_name=done.study, storage=open_storage(fake.ctx.store))
    states = {t.number: t.state.name for t in study.trials}
    assert states[top] == "COMPLETE" and sum(s == "PRUNED" for s in states.values()) == 8
    promoted = next(t for t in study.trials if t.number == by_rung[1][0])
    assert set(promoted.intermediate_values) == {1, 3}


def test_a_failed_rung_fails_its_trial_and_is_not_promoted(fake: Fake) -> None:
    def trainer(request: RunRequest) -> Exit:
        lr = next(a for a in request.argv if a.startswith("learning_rate="))
        if float(lr.split("=")[1]) > 0.1:
            return Exit(1, "diverged\n", after=1.0)
        return _trainer(request)

    fake.backend.script = trainer
    tunings = Tunings(fake.ctx.store)
    spec = _spec(retry={"algorithm": 0}, max_jobs=6)
    tuning = tunings.create(spec, fake.clock.now())
    _settle(fake, tunings, tuning.id)
    done = tunings.get(tuning.id)
    jobs = tunings.rungs(done.id)
    failed = {t for (t, r), j in jobs.items() if j.metrics is None}
    assert done.failed == len(failed) and all((t, 1) not in jobs for t in failed)
    assert done.status == TuningStatus.COMPLETED


def test_a_pass_that_died_after_submitting_a_promotion_does_not_promote_twice(fake: Fake) -> None:
    fake.backend.script = _trainer
    tunings = Tunings(fake.ctx.store)
    tuning = tunings.create(_spec(max_jobs=3, max_parallel_jobs=3), fake.clock.now())
    scheduler = Scheduler(fake.ctx)
    for _ in range(30):  # the three first rungs run and end; the tuning step is left out
        for step in scheduler.steps:
            if step.name != "tuning" or len(tunings.rungs(tuning.id)) < 3:
                step.run()
        fake.clock.advance(1.0)
    jobs = tunings.rungs(tuning.id)
    assert len(jobs) == 3 and all(j.final for j in jobs.values())
    auc = {t: (j.metrics or {})["validation:roc_auc_score"] for (t, _), j in jobs.items()}
    best = max(auc, key=lambda t: auc[t])
    # what a pass that died before linking its promotion left: the promoted job, New
    spec = tuning.spec_model()
    params = {**jobs[best, 0].spec["hyperparameters"], "epochs": 3}
    params = {k: params[k] for k in ("learning_rate", "epochs")}
    tags = {"tuning": str(tuning.id), "trial": str(best), "rung": "1"}
    fake.ctx.store.submit([spec.trial_job(params, "hb-left", tags)], fake.clock.now())
    _settle(fake, tunings, tuning.id)
    jobs = tunings.rungs(tuning.id)
    assert sorted(jobs) == sorted([(t, 0) for t in auc] + [(best, 1)])
    assert len(fake.ctx.store.find()) == 4  # the left job was linked, not run beside a second
    assert (jobs[best, 1].metrics or {})["run:resumed_at"] == 1  # its checkpoints were carried
