"""Post-training tuning: a searched hyperparameter a state changes without data (K-Means'
``k``) is swept from each trial's one training run, and every model is a trial of the study."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from streamfit.datagen import cluster_task, write_batches
from streamfit.jobs.backends.base import RunRequest
from streamfit.jobs.backends.memory import Exit
from streamfit.jobs.errors import SpecError
from streamfit.jobs.manager import JobManager
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.tuning import Tunings, TuningSpec
from streamfit.jobs.tuning.post_training import JOB, POINT, RUN
from streamfit.jobs.tuning.study import open_storage
from tests.cli.home import Env, cli_json, home_env, run_cli
from tests.jobs.conftest import Fake


def _raw(**kw: Any) -> dict[str, Any]:
    return {
        "name": "k-sweep",
        "owner": "a@example.com",
        "algorithm": "kmeans",
        "hyperparameters": {"feature_dim": 4},
        "inputs": {"train": "train.parquet", "validation": "train.parquet"},
        "resources": {"cpus": 1, "memory_mb": 2000},
        "search": {
            "k": {"integer": [2, 5]},
            "mini_batch_size": {"categorical": [500, 1000]},
        },
        "objective": {"metric": "validation:msd", "direction": "minimize"},
        "strategy": "grid",
        "max_jobs": 10,
        "max_parallel_jobs": 2,
        "seed": 3,
        **kw,
    }


def test_a_post_training_hyperparameter_is_swept_by_each_trials_run() -> None:
    spec = TuningSpec.from_raw(_raw(), "k.yaml")
    assert spec.swept == "k" and spec.sweep_argument() == "k=2,3,4,5"
    assert spec.grid_size() == 2 and spec.trial_budget() == 2  # runs, not 8 models
    job = spec.trial_job({"mini_batch_size": 500}, "t-0", {})
    # trained for the largest k: the state keeps centres enough for every smaller one
    assert job.sweep == "k=2,3,4,5" and job.hyperparameters["k"] == 5
    only = TuningSpec.from_raw(_raw(search={"k": {"integer": [2, 9]}}), "k.yaml")
    assert only.trial_budget() == 1  # nothing else searched: one run gives every model
    fixed = {"hyperparameters": {"feature_dim": 4, "k": 3}}
    plain = TuningSpec.from_raw(
        _raw(search={"mini_batch_size": {"categorical": [1, 2]}}, **fixed), ""
    )
    assert plain.swept is None and plain.trial_job({}, "t", {}).sweep is None


def test_a_continuous_post_training_range_is_swept_at_fixed_points() -> None:
    spec = TuningSpec.from_raw(
        {
            **_raw(),
            "algorithm": "linear-learner",
            "hyperparameters": {"predictor_type": "binary_classifier"},
            "search": {"f_beta": {"continuous": [0.5, 2.5]}},
            "objective": {"metric": "validation:f_beta", "direction": "maximize"},
            "strategy": "random",
        },
        "ll.yaml",
    )
    assert spec.sweep_argument() == "f_beta=0.5,1.0,1.5,2.0,2.5"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"search": {"k": {"integer": [2, 5]}, "local_lloyd_max_iter": {"integer": [5, 9]}}},
            "k, local_lloyd_max_iter are post-training hyperparameters of kmeans: a training "
            "run sweeps one of them",
        ),
        ({"strategy": "hyperband"}, "not with hyperband or early_stopping auto"),
        ({"search": {"k": {"integer": [2, 200]}}}, "search.k: 199 values, at most 100"),
        (
            {"inputs": {"train": "a.csv", "validation": "b.csv", "test": "c.csv"}},
            "the swept models of k are measured on test, not validation",
        ),
        ({"sweep": "k=2,3"}, "sweep: the tuner sets it"),
    ],
)
def test_a_post_training_search_it_cannot_sweep_is_refused(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=r"k.yaml, tuning job \('k-sweep'\): ") as caught:
        TuningSpec.from_raw(_raw(**change), "k.yaml")
    assert message in str(caught.value)


def test_a_command_job_has_no_sweep() -> None:
    with pytest.raises(ValueError, match="sweep is for a built-in algorithm"):
        JobSpec.model_validate(
            {"name": "c", "owner": "a@example.com", "command": ["x"], "sweep": "k=2"}
        )


def _msd(k: int, batch: int) -> float:
    return 10.0 / k + batch / 1000  # best: the largest k, the smaller batch


def _sweeping_trainer(request: RunRequest) -> Exit:
    """What ``train --sweep`` writes, for the in-memory backend's runs."""
    argv, env = request.argv, request.job_env
    hp = dict(v.split("=", 1) for a, v in itertools.pairwise(argv) if a == "--hp")
    values = [int(v) for v in argv[argv.index("--sweep") + 1].split("=")[1].split(",")]
    batch = int(hp["mini_batch_size"])
    out = Path(env["STREAMFIT_OUTPUT_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"train:rows": 100.0}))
    rows = [{"k": k, "validation:msd": _msd(k, batch)} for k in values]
    (out / "sweep.json").write_text(json.dumps(rows))
    return Exit(0, after=3)


def test_the_points_of_a_run_are_told_once_when_a_pass_dies_midway(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.backend.script = _sweeping_trainer
    tunings = Tunings(fake.ctx.store)
    tuning = tunings.create(TuningSpec.from_raw(_raw(), "k.yaml"), fake.clock.now())
    added = optuna.Study.add_trial
    calls = []

    def dies_at_the_second(study: optuna.Study, trial: Any) -> None:
        calls.append(trial.user_attrs)
        if len(calls) == 2:  # a pass dies after adding one point of a run
            raise RuntimeError("the scheduler died")
        added(study, trial)

    monkeypatch.setattr(optuna.Study, "add_trial", dies_at_the_second)
    scheduler = Scheduler(fake.ctx)
    for _ in range(100):
        scheduler.tick()
        if tunings.get(tuning.id).final:
            break
        fake.clock.advance(1.0)
    done = tunings.get(tuning.id)
    assert len(calls) == 2 * 3 + 1  # the point lost with the dead pass added again, once
    study = optuna.load_study(study_name=done.study, storage=open_storage(fake.ctx.store))
    points = [(t.user_attrs[RUN], t.user_attrs[POINT]) for t in study.trials]
    assert sorted(points) == sorted({(r, p) for r in (0, 1) for p in range(4)})
    jobs = tunings.trials(tuning.id)
    assert all(t.user_attrs[JOB] == jobs[t.user_attrs[RUN]].id for t in study.trials)
    assert [r.request.argv[-2:] for r in fake.backend.runs.values()] == [
        ["--sweep", "k=2,3,4,5"]
    ] * 2
    assert done.status.value == "Completed" and done.trials == 8 and done.completed == 8
    assert done.best_value == pytest.approx(_msd(5, 500))
    assert done.best_params == {"k": 5, "mini_batch_size": 500}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from home_env(tmp_path, cpus=2, memory_mb=16000)


def test_a_kmeans_tuning_job_sweeps_k_from_one_run_a_trial(env: Env, tmp_path: Path) -> None:
    train = tmp_path / "train.parquet"
    write_batches(train, cluster_task(4, 4, seed=1).blocks(2_000, block=1_000))
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump(_raw()))
    tuning_id = cli_json(env, "tune", "submit", str(path))["id"]
    settings = Settings.load(env={}, home=tmp_path / "home", capacity_cpus=2)
    manager = JobManager.open(settings, notifiers={})
    try:
        tunings = Tunings(manager.store)
        assert manager.scheduler().run_until(lambda: tunings.get(tuning_id).final, 240)
        launched = manager.store.find(tags={"tuning": str(tuning_id)})
    finally:
        manager.close()
    shown = cli_json(env, "tune", "show", str(tuning_id))
    assert shown["status"] == "Completed" and shown["failed"] == 0
    trials = shown["trials"]
    assert len(launched) == 2 and len(trials) == 8  # 2 training runs, 8 models
    by_job: dict[int, list[int]] = {}
    for t in trials:
        by_job.setdefault(t["job_id"], []).append(t["hyperparameters"]["k"])
    assert {j: sorted(ks) for j, ks in by_job.items()} == {j.id: [2, 3, 4, 5] for j in launched}
    best = trials[0]
    assert best["objective"] == shown["best_value"]
    assert best["hyperparameters"] == shown["best_params"]
    assert shown["best_trial"] == best["trial"] and shown["best_job_id"] == best["job_id"]
    assert shown["budget"]["rows"] == 2 * 2_000  # each run's rows once, not each model's
    # the best model's objective is what train --sweep reports for it
    params = shown["best_params"]
    result = run_cli(
        env,
        *("train", "kmeans", "--train", str(train), "--validation", str(train)),
        *("--hp", "feature_dim=4", "--hp", "k=5", "--hp"),
        f"mini_batch_size={params['mini_batch_size']}",
        *("--sweep", "k=2,3,4,5", "--output", str(tmp_path / "out"), "--no-progress", "--json"),
    )
    assert result.exit_code == 0, result.output
    [row] = [r for r in json.loads(result.stdout)["sweep"] if r["k"] == params["k"]]
    assert row["validation:msd"] == pytest.approx(shown["best_value"], rel=1e-6)
    text = run_cli(env, "tune", "show", str(tuning_id)).output
    assert "8 trials (2/2 runs)" in text and "model" in text
    assert "k: the models of a trial come from its one training run" in text
    submitted = run_cli(env, "tune", "submit", str(path)).output
    assert "2 trials at most (4 models of k each)" in submitted
