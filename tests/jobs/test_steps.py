"""The launch, monitor and retry steps, with real processes on the local backend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streamfit.datagen import linear_task, write_batches
from streamfit.jobs.context import StepContext
from streamfit.jobs.launch import launch_step
from streamfit.jobs.runs import run_name
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import Status
from streamfit.jobs.store import Job
from tests.jobs.conftest import command_spec


def _finish(ctx: StepContext, timeout: float = 60) -> list[Job]:
    scheduler = Scheduler(ctx)
    assert scheduler.run_until(lambda: all(j.is_terminal for j in ctx.store.find()), timeout)
    return ctx.store.find()


def _history(ctx: StepContext, job_id: int) -> list[tuple[str | None, str]]:
    return [(e.from_status, e.to_status) for e in ctx.store.events(job_id)]


def test_a_job_that_does_not_fit_waits_without_using_attempts(ctx: StepContext) -> None:
    ctx.store.submit(
        [command_spec("import time; time.sleep(2)", resources={"cpus": 2})], now=time.time()
    )
    waiting = ctx.store.submit([command_spec("pass", name="small")], now=time.time()).job_ids[0]
    assert launch_step(ctx) + launch_step(ctx) == 2  # one launch, then one recorded wait
    job = ctx.store.get(waiting)
    assert job.status == Status.NEW and job.attempt == 1
    assert job.failure_kind == "capacity"
    assert "needs 1 CPUs, 0 GPUs, 1024 MB, free 0 CPUs" in (job.failure_reason or "")
    assert launch_step(ctx) == 0  # still waiting: nothing new to record
    jobs = _finish(ctx)
    assert [j.status for j in jobs] == [Status.COMPLETED, Status.COMPLETED]
    assert ctx.store.get(waiting).attempt == 1


def test_failures_retry_within_budget_then_end_final(ctx: StepContext, tmp_path: Path) -> None:
    flaky = tmp_path / "flaky"
    code = (
        f"import os, pathlib; p = pathlib.Path({str(flaky)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1))\n"
        "raise SystemExit(0 if n >= 1 else 1)"
    )
    ids = ctx.store.submit(
        [
            command_spec(code, name="flaky", retry={"algorithm": 2, "backoff_seconds": 0}),
            command_spec(
                "raise SystemExit('boom')",
                name="broken",
                retry={"algorithm": 1, "backoff_seconds": 0},
            ),
        ],
        now=time.time(),
    ).job_ids
    _finish(ctx)
    flaky_job, broken = (ctx.store.get(i) for i in ids)
    assert (flaky_job.status, flaky_job.attempt) == (Status.COMPLETED, 2)
    assert (broken.status, broken.final, broken.attempt) == (Status.FAILED, True, 2)
    assert broken.failure_kind == "algorithm" and "boom" in (broken.failure_reason or "")
    steps = [to for _, to in _history(ctx, broken.id)]
    assert steps[0] == "New" and steps.count("Failed") == 3  # two failures, then final
    assert steps[-2:] == ["Failed", "Failed"]
    final = ctx.store.events(broken.id)[-1]
    assert final.final and final.detail is not None and "budget 1" in final.detail


def test_the_same_error_again_and_again_is_a_crash_loop(ctx: StepContext) -> None:
    job_id = ctx.store.submit(
        [
            command_spec(
                "raise SystemExit('same error 12345')",
                retry={"algorithm": 10, "backoff_seconds": 0, "crash_loop": 3},
            )
        ],
        now=time.time(),
    ).job_ids[0]
    _finish(ctx)
    job = ctx.store.get(job_id)
    assert job.final and job.attempt == 3
    assert "crash loop" in (ctx.store.events(job_id)[-1].detail or "")


def test_a_run_past_its_maximum_time_is_stopped_and_failed(ctx: StepContext) -> None:
    job_id = ctx.store.submit(
        [
            command_spec(
                "import time; time.sleep(60)", max_runtime_seconds=0.5, retry={"algorithm": 0}
            )
        ],
        now=time.time(),
    ).job_ids[0]
    _finish(ctx)
    job = ctx.store.get(job_id)
    assert job.status == Status.FAILED and job.final
    assert job.failure_reason is not None and "max_runtime_seconds" in job.failure_reason


def test_stop_requests_reach_the_run_or_prevent_the_launch(ctx: StepContext) -> None:
    running, waiting = ctx.store.submit(
        [
            command_spec("import time; time.sleep(60)", resources={"cpus": 2}),
            command_spec("pass", name="never"),
        ],
        now=time.time(),
    ).job_ids
    scheduler = Scheduler(ctx)
    assert scheduler.run_until(lambda: ctx.store.get(running).status == Status.IN_PROGRESS, 30)
    ctx.store.request_stop(running)
    ctx.store.request_stop(waiting)
    jobs = _finish(ctx)
    assert [j.status for j in jobs] == [Status.STOPPED, Status.STOPPED]
    assert ctx.store.get(waiting).backend_ref is None  # never launched


def test_unrunnable_jobs_fail_as_invalid_at_once(ctx: StepContext) -> None:
    ids = ctx.store.submit(
        [
            JobSpec(name="x", owner="a@example.com", command=["no-such-program-x"]),
            command_spec("pass", resources={"cpus": 64}),
        ],
        now=time.time(),
    ).job_ids
    _finish(ctx)
    for job_id in ids:
        job = ctx.store.get(job_id)
        assert (job.status, job.failure_kind, job.final) == (Status.FAILED, "invalid", True)
        assert job.attempt == 1


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.parquet"
    write_batches(path, linear_task(5, seed=4).blocks(40_000, block=5000))
    return path


def _builtin(train: Path, **kw: object) -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": "ll",
            "owner": "a@example.com",
            "algorithm": "linear-learner",
            "hyperparameters": {
                "predictor_type": "binary_classifier",
                "num_models": 4,
                "mini_batch_size": 200,
            },
            "inputs": {"train": str(train), "validation": str(train)},
            **kw,
        }
    )


def test_builtin_jobs_train_and_record_their_metrics(ctx: StepContext, train_file: Path) -> None:
    job_id = ctx.store.submit([_builtin(train_file)], now=time.time()).job_ids[0]
    _finish(ctx, timeout=120)
    job = ctx.store.get(job_id)
    assert job.status == Status.COMPLETED, job.failure_reason
    assert job.metrics is not None and job.metrics["train:rows"] == 40_000
    assert job.metrics["validation:roc_auc_score"] > 0.6
    assert job.checkpoint_uri is not None and Path(job.checkpoint_uri).is_dir()


def test_bad_hyperparameter_at_run_time_is_invalid_and_not_retried(
    ctx: StepContext, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.parquet"
    job_id = ctx.store.submit([_builtin(missing)], now=time.time()).job_ids[0]
    _finish(ctx, timeout=120)
    job = ctx.store.get(job_id)
    assert (job.status, job.failure_kind, job.attempt) == (Status.FAILED, "invalid", 1)
    assert "no such file" in (job.failure_reason or "")


def test_a_killed_training_run_resumes_from_its_checkpoint(
    ctx: StepContext, train_file: Path, tmp_path: Path
) -> None:
    import json
    import os
    import signal

    import torch

    from streamfit import State, train

    spec = _builtin(train_file, checkpoint_seconds=0.01, retry={"backoff_seconds": 0})
    job_id = ctx.store.submit([spec], now=time.time()).job_ids[0]
    scheduler = Scheduler(ctx)
    checkpoints = ctx.home / "jobs" / str(job_id) / "checkpoints"
    assert scheduler.run_until(lambda: any(checkpoints.glob("checkpoint-*")), 120)
    run = run_name(ctx.store.id, job_id, 1)
    child = ctx.backend.runs / run / "child.json"  # type: ignore[attr-defined]
    os.kill(json.loads(child.read_text())["pid"], signal.SIGKILL)  # "the node died"
    _finish(ctx, timeout=120)
    job = ctx.store.get(job_id)
    assert (job.status, job.attempt) == (Status.COMPLETED, 2), job.failure_reason
    history = [(e.to_status, e.failure_kind) for e in ctx.store.events(job_id)]
    assert ("Failed", "infrastructure") in history
    # The resumed job's state equals one uninterrupted run's, bit for bit.
    whole = train(
        "linear-learner",
        str(train_file),
        validation=str(train_file),
        hyperparameters=spec.hyperparameters,
        progress=False,
    )
    resumed = State.load(Path(job.output_uri or "") / "state")
    for key, value in whole.state.tensors.items():
        assert torch.equal(value, resumed.tensors[key]), key
