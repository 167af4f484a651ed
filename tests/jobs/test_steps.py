"""The launch, monitor and retry steps: their logic on runs in memory with a fake clock
(fast), and end to end with real processes on the local backend (built-in training, kills,
run folders)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from streamfit.datagen import linear_task, write_batches
from streamfit.jobs.backends.base import RunPhase, RunRequest
from streamfit.jobs.backends.local import LocalBackend
from streamfit.jobs.backends.memory import Exit
from streamfit.jobs.context import StepContext
from streamfit.jobs.database import create_engine
from streamfit.jobs.errors import CapacityError, InvalidJobError, TransientLaunchError
from streamfit.jobs.launch import launch_step
from streamfit.jobs.manager import JobManager
from streamfit.jobs.monitor import monitor_step
from streamfit.jobs.runs import run_name
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import JobSpec, Resources
from streamfit.jobs.status import Status
from streamfit.jobs.store import Job, Store
from tests.jobs.conftest import Fake, command_spec


def _finish(ctx: StepContext, timeout: float = 60) -> list[Job]:
    scheduler = Scheduler(ctx)
    assert scheduler.run_until(lambda: all(j.is_terminal for j in ctx.store.find()), timeout)
    return ctx.store.find()


def _history(ctx: StepContext, job_id: int) -> list[tuple[str | None, str]]:
    return [(e.from_status, e.to_status) for e in ctx.store.events(job_id)]


def _submit(fake: Fake, *specs: JobSpec) -> list[int]:
    return fake.ctx.store.submit(list(specs), now=fake.clock.now()).job_ids


def _attempt(request: RunRequest) -> tuple[int, int]:
    """The job id and attempt a run is for."""
    return int(request.env["STREAMFIT_JOB_ID"]), int(request.env["STREAMFIT_ATTEMPT"])


# -- the steps' logic, on runs in memory ------------------------------------------------------


def test_a_job_that_does_not_fit_waits_without_using_attempts(fake: Fake) -> None:
    fake.backend.script = lambda request: Exit(0, after=2)
    big, waiting = _submit(
        fake, command_spec("big", resources={"cpus": 2}), command_spec("pass", name="small")
    )
    ctx = fake.ctx
    assert launch_step(ctx) + launch_step(ctx) == 2  # one launch, then one recorded wait
    job = ctx.store.get(waiting)
    assert job.status == Status.NEW and job.attempt == 1
    assert job.failure_kind == "capacity"
    assert "needs 1 CPUs, 0 GPUs, 1024 MB, free 0 CPUs" in (job.failure_reason or "")
    assert launch_step(ctx) == 0  # still waiting: nothing new to record
    assert fake.backend.launches == {run_name(ctx.store.id, big, 1): 1}  # never asked
    jobs = fake.settle()
    assert [j.status for j in jobs] == [Status.COMPLETED, Status.COMPLETED]
    assert ctx.store.get(waiting).attempt == 1


def test_failures_retry_within_budget_then_end_final(fake: Fake) -> None:
    flaky, broken = _submit(
        fake,
        command_spec("flaky", name="flaky", retry={"algorithm": 2, "backoff_seconds": 0}),
        command_spec("broken", name="broken", retry={"algorithm": 1, "backoff_seconds": 0}),
    )

    def script(request: RunRequest) -> Exit:
        job_id, attempt = _attempt(request)
        if job_id == flaky:
            return Exit(0 if attempt >= 2 else 1, after=1)
        return Exit(1, "Traceback ...\nSystemExit: boom\n", after=1)

    fake.backend.script = script
    fake.settle()
    ctx = fake.ctx
    flaky_job, broken_job = (ctx.store.get(i) for i in (flaky, broken))
    assert (flaky_job.status, flaky_job.attempt) == (Status.COMPLETED, 2)
    assert (broken_job.status, broken_job.final, broken_job.attempt) == (Status.FAILED, True, 2)
    assert broken_job.failure_kind == "algorithm" and "boom" in (broken_job.failure_reason or "")
    assert broken_job.failures.count("algorithm") == 2
    steps = [to for _, to in _history(ctx, broken)]
    assert steps[0] == "New" and steps.count("Failed") == 3  # two failures, then final
    assert steps[-2:] == ["Failed", "Failed"]
    final = ctx.store.events(broken)[-1]
    assert final.final and final.detail is not None and "budget 1" in final.detail
    assert ctx.store.find(status=Status.FAILED, final=True) == [broken_job]


def test_the_same_error_again_and_again_is_a_crash_loop(fake: Fake) -> None:
    fake.backend.script = lambda request: Exit(1, "same error 12345\n", after=1)
    (job_id,) = _submit(
        fake,
        command_spec("crash", retry={"algorithm": 10, "backoff_seconds": 0, "crash_loop": 3}),
    )
    fake.settle()
    job = fake.ctx.store.get(job_id)
    assert job.final and job.attempt == 3 and job.failures.streak == 3
    assert "crash loop" in (fake.ctx.store.events(job_id)[-1].detail or "")


def test_a_run_past_its_maximum_time_is_stopped_and_failed(fake: Fake) -> None:
    (job_id,) = _submit(
        fake, command_spec("sleep", max_runtime_seconds=30, retry={"algorithm": 0})
    )  # runs until stopped
    fake.settle(seconds=10)
    job = fake.ctx.store.get(job_id)
    assert job.status == Status.FAILED and job.final
    assert job.failure_reason is not None and "max_runtime_seconds" in job.failure_reason
    run = fake.backend.runs[job.backend_ref or ""]
    assert run.state.timed_out and not run.state.stop_requested
    assert 30 < (job.ended_at or 0) - (job.started_at or 0) <= 40


def test_a_run_waiting_in_the_backends_queue_has_not_started_its_clock(fake: Fake) -> None:
    fake.backend.pending = True
    (job_id,) = _submit(fake, command_spec("queued", max_runtime_seconds=30))
    scheduler = Scheduler(fake.ctx)
    for _ in range(5):  # a minute in the queue: not past its maximum run time
        scheduler.tick()
        fake.clock.advance(15)
    job = fake.ctx.store.get(job_id)
    assert job.status == Status.LAUNCHED and job.started_at is None
    fake.backend.script = lambda request: Exit(0, after=5)
    fake.backend.start(job.backend_ref or "")
    assert fake.settle()[0].status == Status.COMPLETED


def test_stop_requests_reach_the_run_or_prevent_the_launch(fake: Fake) -> None:
    running, waiting = _submit(
        fake,
        command_spec("sleep", resources={"cpus": 2}),
        command_spec("pass", name="never"),
    )
    scheduler = Scheduler(fake.ctx)
    scheduler.tick()
    scheduler.tick()
    store = fake.ctx.store
    assert store.get(running).status == Status.IN_PROGRESS
    store.request_stop(running)
    store.request_stop(waiting)
    jobs = fake.settle()
    assert [j.status for j in jobs] == [Status.STOPPED, Status.STOPPED]
    assert store.get(waiting).backend_ref is None  # never launched
    assert fake.backend.runs[store.get(running).backend_ref or ""].state.stop_requested


def test_unrunnable_jobs_fail_as_invalid_at_once(fake: Fake) -> None:
    fake.backend.refuse(InvalidJobError("command not found: 'no-such-program-x'"))
    ids = _submit(
        fake,
        JobSpec(name="x", owner="a@example.com", command=["no-such-program-x"]),
        command_spec("pass", resources={"cpus": 64}),
    )
    fake.settle()
    for job_id in ids:
        job = fake.ctx.store.get(job_id)
        assert (job.status, job.failure_kind, job.final) == (Status.FAILED, "invalid", True)
        assert job.attempt == 1
    assert "command not found" in (fake.ctx.store.get(ids[0]).failure_reason or "")
    assert "asks for 64 CPUs" in (fake.ctx.store.get(ids[1]).failure_reason or "")


def test_launch_errors_back_off_without_using_attempts(fake: Fake) -> None:
    fake.backend.script = lambda request: Exit(0, after=1)
    fake.backend.refuse(
        TransientLaunchError("the cluster hiccupped"),
        TransientLaunchError("the cluster hiccupped"),
        CapacityError("another scheduler took the room"),
    )
    (job_id,) = _submit(fake, command_spec("pass"))
    ctx = fake.ctx
    launch_step(ctx)
    job = ctx.store.get(job_id)
    assert (job.status, job.failures.launch_errors) == (Status.NEW, 1)
    assert job.failure_reason == "the cluster hiccupped"
    assert 0 < job.next_attempt_at - fake.clock.now() <= 0.05  # capacity_backoff, jittered
    assert launch_step(ctx) == 0  # not due yet
    fake.clock.advance(1)
    launch_step(ctx)
    assert ctx.store.get(job_id).failures.launch_errors == 2
    fake.clock.advance(1)
    launch_step(ctx)
    assert ctx.store.get(job_id).failure_kind == "capacity"
    done = fake.settle()[0]
    assert (done.status, done.attempt) == (Status.COMPLETED, 1)
    assert fake.backend.launches[done.backend_ref or ""] == 4


def test_lost_runs_are_infrastructure_failures_and_retried(fake: Fake) -> None:
    (job_id,) = _submit(fake, command_spec("pass", retry={"backoff_seconds": 0}))
    ctx = fake.ctx
    launch_step(ctx)
    first = ctx.store.get(job_id).backend_ref or ""
    fake.backend.vanish(first, "the node died")
    monitor_step(ctx)
    job = ctx.store.get(job_id)
    assert (job.status, job.failure_kind, job.final) == (Status.FAILED, "infrastructure", False)
    assert job.failure_reason == "the node died"

    def script(request: RunRequest) -> Exit:  # killed once more, then it goes through
        return Exit(-int(signal.SIGKILL) if _attempt(request)[1] == 2 else 0, after=1)

    fake.backend.script = script
    fake.settle()
    job = ctx.store.get(job_id)
    assert (job.status, job.attempt, job.failures.count("infrastructure")) == (
        Status.COMPLETED,
        3,
        2,
    )
    history = [(e.to_status, e.detail) for e in ctx.store.events(job_id)]
    assert ("Failed", "infrastructure: killed by SIGKILL") in history


def test_a_run_the_backend_forgot_is_lost_and_retried(fake: Fake) -> None:
    (job_id,) = _submit(fake, command_spec("pass", retry={"backoff_seconds": 0}))
    ctx = fake.ctx
    launch_step(ctx)
    fake.backend.forget(ctx.store.get(job_id).backend_ref or "")
    fake.backend.script = lambda request: Exit(0, after=1)
    job = fake.settle()[0]
    assert (job.status, job.attempt) == (Status.COMPLETED, 2)
    assert sorted(fake.backend.launches) == [run_name(ctx.store.id, job_id, a) for a in (1, 2)]


def test_a_secret_that_cannot_be_read_fails_the_job_as_invalid(fake: Fake, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-secret.txt"
    (job_id,) = _submit(fake, command_spec("pass", env_from={"DB_PW": f"file:{missing}"}))
    fake.settle()
    job = fake.ctx.store.get(job_id)
    assert (job.status, job.failure_kind, job.final, job.attempt) == (
        Status.FAILED,
        "invalid",
        True,
        1,
    )
    assert f"env_from DB_PW: cannot read {missing}" in (job.failure_reason or "")
    assert fake.backend.launches == {}


def test_a_secret_in_a_failing_jobs_output_is_masked_in_the_store(
    fake: Fake, tmp_path: Path
) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text("pa55-w0rd-xyz\n")
    fake.backend.script = lambda r: Exit(1, f"password is {r.secret_env['DB_PW']}\n", after=1)
    spec = command_spec("print", env_from={"DB_PW": f"file:{pw}"}, retry={"algorithm": 0})
    (job_id,) = _submit(fake, spec)
    fake.settle()
    store = fake.ctx.store
    job = store.get(job_id)
    assert job.status == Status.FAILED
    assert "password is ***" in (job.failure_reason or "")
    assert all("pa55" not in (e.detail or "") for e in store.events(job_id))
    if store.path is not None:  # not a byte of it in the SQLite files either
        for path in store.path.parent.glob(store.path.name + "*"):
            assert b"pa55-w0rd" not in path.read_bytes(), path


# -- end to end: real training processes on the local backend ---------------------------------


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


# -- store identity: run folders on the local backend --------------------------------------


def test_a_new_store_in_the_same_home_never_adopts_the_old_ones_runs(
    ctx: StepContext, tmp_path: Path
) -> None:
    old_id = ctx.store.submit([command_spec("print('old job')")], now=time.time()).job_ids[0]
    _finish(ctx)
    assert "old job" in ctx.backend.logs(ctx.store.get(old_id).backend_ref or "")
    # Another store (a reset one: its ids start at 1 again) with the same home and backend.
    store = Store(f"sqlite:///{tmp_path / 'reset.db'}")
    backend = LocalBackend(ctx.home, Resources(cpus=2, gpus=0, memory_mb=8000), store_id=store.id)
    reset = StepContext(store, backend, ctx.home)
    new_id = store.submit([command_spec("print('new job')")], now=time.time()).job_ids[0]
    assert new_id == old_id
    _finish(reset)
    job = store.get(new_id)
    assert job.status == Status.COMPLETED and job.backend_ref != ctx.store.get(old_id).backend_ref
    assert backend.logs(job.backend_ref or "") == "new job\n"
    assert backend.poll(ctx.store.get(old_id).backend_ref or "").phase == RunPhase.UNKNOWN
    store.close()


def test_runs_named_before_stores_had_ids_are_still_followed(tmp_path: Path) -> None:
    """A store made by an older streamfit, with a run in flight under its old name."""
    from alembic import command
    from alembic.config import Config

    from streamfit.jobs import store as store_module

    home = tmp_path / "home"
    home.mkdir()
    (home / "streamfit.db").touch()
    url = f"sqlite:///{home / 'streamfit.db'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    old_backend = LocalBackend(home, Resources(cpus=2, gpus=0, memory_mb=8000))  # no store id
    argv = [sys.executable, "-c", "print('ran under its old name')"]
    old_backend.launch(RunRequest("1-1", argv, {"PATH": os.environ["PATH"]}))
    # The old store's rows, as the old launch step wrote them.
    spec = command_spec("print('ran under its old name')")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO submissions VALUES ('s', 0, 1, 'a@example.com', NULL)"))
        conn.execute(
            sa.text(
                "INSERT INTO jobs (id, name, owner, submission, spec, status, final, attempt,"
                " max_attempts, failures, backend, backend_ref, stop_requested, priority,"
                " created_at, next_attempt_at, tags, version) VALUES (1, 'job', 'a@example.com',"
                " 's', :spec, 'Launched', 0, 1, 3, '{}', 'local', '1-1', 0, 0, 0, 0, '{}', 2)"
            ),
            {"spec": json.dumps(spec.model_dump(mode="json"))},
        )
        conn.execute(
            sa.text(
                "INSERT INTO events (job_id, at, from_status, to_status, attempt, detail,"
                " final, notified) VALUES (1, 1, 'New', 'Launched', 1, 'run 1-1', 0, 0)"
            )
        )
    engine.dispose()
    manager = JobManager.open(Settings.load(env={}, home=home, capacity_cpus=2), notifiers={})
    assert manager.scheduler().run_until(lambda: manager.store.get(1).is_terminal, 30)
    assert manager.store.get(1).status == Status.COMPLETED
    assert manager.logs(1) == manager.logs(1, attempt=1) == "ran under its old name\n"
    manager.close()
