"""``streamfit tune``: a real tuning job over Linear Learner on a small generated set, its
trials trained by real processes of the local backend, followed from the command line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamfit.datagen import linear_task, write_batches
from streamfit.jobs.manager import JobManager
from streamfit.jobs.settings import Settings
from streamfit.jobs.tuning import Tunings
from tests.cli.home import Env, cli_json, home_env, run_cli


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from home_env(tmp_path, cpus=2, memory_mb=16000)


def _spec(tmp_path: Path, **kw: Any) -> Path:
    train = tmp_path / "train.parquet"
    if not train.exists():
        write_batches(train, linear_task(5, seed=4).blocks(4_000, block=2000))
    doc = {
        "name": "ll-sweep",
        "owner": "a@example.com",
        "algorithm": "linear-learner",
        "hyperparameters": {"predictor_type": "binary_classifier", "num_models": 1, "epochs": 1},
        "inputs": {"train": "train.parquet", "validation": "train.parquet"},
        "resources": {"cpus": 1, "memory_mb": 2000},
        "search": {
            "learning_rate": {"continuous": [1e-4, 0.5], "scaling": "log"},
            "mini_batch_size": {"categorical": [100, 500]},
        },
        "objective": {"metric": "validation:roc_auc_score", "direction": "maximize"},
        "strategy": "random",
        "max_jobs": 2,
        "max_parallel_jobs": 2,
        "seed": 3,
        **kw,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_tuning_job_over_linear_learner_end_to_end(env: Env, tmp_path: Path) -> None:
    submitted = cli_json(env, "tune", "submit", str(_spec(tmp_path)))
    assert submitted["status"] == "Running" and submitted["max_trials"] == 2
    tuning_id = submitted["id"]
    settings = Settings.load(env={}, home=tmp_path / "home", capacity_cpus=2)
    manager = JobManager.open(settings, notifiers={})
    try:
        tunings = Tunings(manager.store)
        ended = manager.scheduler().run_until(lambda: tunings.get(tuning_id).final, 240)
    finally:
        manager.close()
    assert ended
    shown = cli_json(env, "tune", "show", str(tuning_id))
    assert shown["status"] == "Completed", shown
    assert len(shown["trials"]) == 2 and shown["failed"] == 0
    aucs = [t["objective"] for t in shown["trials"]]
    assert aucs == sorted(aucs, reverse=True) and aucs[0] == shown["best_value"] > 0.6
    assert shown["best_params"] == shown["trials"][0]["hyperparameters"]
    assert shown["budget"]["rows"] == 2 * 4_000  # one epoch of 4,000 rows a trial
    assert shown["budget"]["seconds"] > 0
    for trial in shown["trials"]:  # each trial is a job, with the trial's hyperparameters
        job = cli_json(env, "jobs", "show", str(trial["job_id"]))
        assert job["tags"] == {"tuning": str(tuning_id), "trial": str(trial["trial"])}
        assert (
            job["spec"]["hyperparameters"]["learning_rate"]
            == trial["hyperparameters"]["learning_rate"]
        )
    text = run_cli(env, "tune", "show", str(tuning_id)).output
    assert "best: trial" in text and "learning_rate=" in text and "8,000 rows read" in text
    listed = cli_json(env, "tune", "list")
    assert [t["id"] for t in listed] == [tuning_id] and listed[0]["trials"] == 2
    assert "Completed" in run_cli(env, "tune", "list").output


def test_submit_refuses_a_bad_spec_with_its_file_and_field(env: Env, tmp_path: Path) -> None:
    result = run_cli(env, "tune", "submit", str(_spec(tmp_path, max_parallel_jobs=0)))
    assert result.exit_code != 0
    assert "sweep.yaml, tuning job ('ll-sweep'): max_parallel_jobs:" in result.stderr
    unknown = _spec(tmp_path, search={"no_such_hp": {"integer": [1, 2]}})
    result = run_cli(env, "tune", "submit", str(unknown))
    assert result.exit_code != 0 and "no_such_hp" in result.stderr
    result = run_cli(env, "tune", "submit", str(_spec(tmp_path, warm_start=[7])))
    assert result.exit_code != 0 and "no tuning job 7" in result.stderr


def test_stop_and_show_of_an_unknown_tuning_job(env: Env, tmp_path: Path) -> None:
    assert "no tuning job 5" in run_cli(env, "tune", "show", "5").stderr
    tuning_id = cli_json(env, "tune", "submit", str(_spec(tmp_path)))["id"]
    assert "stopping" in run_cli(env, "tune", "stop", str(tuning_id)).output
    assert cli_json(env, "tune", "show", str(tuning_id))["status"] == "Running"  # until a tick
    settings = Settings.load(env={}, home=tmp_path / "home", capacity_cpus=2)
    manager = JobManager.open(settings, notifiers={})
    try:
        manager.scheduler().tick()
        assert Tunings(manager.store).get(tuning_id).status.value == "Stopped"
    finally:
        manager.close()
    assert "already Stopped" in run_cli(env, "tune", "stop", str(tuning_id)).output


@pytest.mark.slow  # four real training runs, two of them one after the other: ~25 s
def test_hyperband_resumes_the_best_trial_from_its_checkpoint_with_linear_learner(
    env: Env, tmp_path: Path
) -> None:
    spec = _spec(
        tmp_path,
        strategy="hyperband",
        resource={"hyperparameter": "epochs", "min": 1, "max": 3, "reduction_factor": 3},
        hyperparameters={"predictor_type": "binary_classifier", "num_models": 1},
        max_jobs=3,
    )
    tuning_id = cli_json(env, "tune", "submit", str(spec))["id"]
    settings = Settings.load(env={}, home=tmp_path / "home", capacity_cpus=2)
    manager = JobManager.open(settings, notifiers={})
    try:
        tunings = Tunings(manager.store)
        ended = manager.scheduler().run_until(lambda: tunings.get(tuning_id).final, 240)
        jobs = tunings.rungs(tuning_id)
    finally:
        manager.close()
    assert ended
    assert sorted(r for _, r in jobs) == [0, 0, 0, 1]  # the best of 3 resumed, once
    [(trial, _)] = [k for k in jobs if k[1] == 1]
    first, resumed = jobs[trial, 0].metrics or {}, jobs[trial, 1].metrics or {}
    assert first["train:epochs"] == 1 and first["train:rows"] == 4_000
    assert resumed["train:epochs"] == 3 and resumed["train:rows"] == 3 * 4_000
    # the resumed run read its two further epochs only: it went on from its checkpoint
    assert round(resumed["train:rows_per_second"] * resumed["train:seconds"]) == 2 * 4_000
    aucs = {t: (j.metrics or {})["validation:roc_auc_score"] for (t, r), j in jobs.items() if not r}
    assert trial == max(aucs, key=lambda t: aucs[t])
    shown = cli_json(env, "tune", "show", str(tuning_id))
    assert shown["status"] == "Completed" and shown["best_trial"] == trial
    assert shown["trials"][0]["rung"] == 1 and shown["trials"][0]["hyperparameters"]["epochs"] == 3
    assert shown["budget"]["rows"] == 2 * 4_000 + 3 * 4_000  # not 3 x 3 epochs: 36,000
