"""Jobs that do not end: restarted after failures that followed progress, spending nothing,
and stopped by a crash loop; their published versions in ``jobs show``."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import torch
from click.testing import CliRunner

from streamfit import Batch, get_algorithm
from streamfit.cli.main import cli
from streamfit.jobs.backends.local import LocalBackend
from streamfit.jobs.context import StepContext
from streamfit.jobs.continuous import progress_of
from streamfit.jobs.errors import SpecError
from streamfit.jobs.monitor import monitor_step
from streamfit.jobs.retry import retry_step
from streamfit.jobs.runs import run_request
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.spec import JobSpec, Resources, parse_specs
from streamfit.jobs.status import Status
from streamfit.jobs.store import Job, Store
from streamfit.training.loop import Loop, warm_up
from streamfit.training.publish import Publisher
from tests.data.conftest import redis_url  # noqa: F401  (the session's redis-server)
from tests.jobs.conftest import Fake, command_spec

CRASH = "import sys; sys.exit(3)"


def continuous(code: str = CRASH, **kw: Any) -> JobSpec:
    kw.setdefault("retry", {"backoff_seconds": 0.0})
    return command_spec(code, continuous=True, **kw)


def _run_of(fake: Fake, job_id: int) -> str:
    """The job's run, launching it (with the monitor seeing it run) if need be."""
    scheduler = Scheduler(fake.ctx)
    for _ in range(20):
        job = fake.ctx.store.get(job_id)
        if job.status == Status.IN_PROGRESS and job.backend_ref is not None:
            return job.backend_ref
        scheduler.tick()
        fake.clock.advance(1.0)
    raise AssertionError(f"job {job_id} not running: {fake.ctx.store.get(job_id)}")


def _checkpoint(job: Job, number: int) -> None:
    """What a trainer leaves: a new numbered checkpoint folder."""
    assert job.checkpoint_uri is not None
    (Path(job.checkpoint_uri) / f"checkpoint-{number:09d}").mkdir(parents=True)


def _settle_failure(fake: Fake, job_id: int) -> Job:
    """The monitor, then the retry step: the failed run's job queued again, or failed for good."""
    monitor_step(fake.ctx)
    assert fake.ctx.store.get(job_id).status == Status.FAILED
    retry_step(fake.ctx)
    return fake.ctx.store.get(job_id)


# -- the spec -------------------------------------------------------------------------------


def test_a_continuous_builtin_needs_a_publishing_interval(tmp_path: Path) -> None:
    base = {
        "name": "ctr",
        "owner": "a@example.com",
        "algorithm": "linear-learner",
        "hyperparameters": {"predictor_type": "binary_classifier"},
        "inputs": {"train": "redis://127.0.0.1:6379/0?stream=clicks&group=t"},
        "continuous": True,
    }
    with pytest.raises(SpecError, match=r"continuous: .*publish_every_seconds"):
        parse_specs([base], "jobs.yaml")
    with pytest.raises(SpecError, match="publish_every_seconds is for a built-in"):
        parse_specs([{**continuous().model_dump(), "publish_every_seconds": 5}], "jobs.yaml")
    (spec,) = parse_specs([{**base, "publish_every_seconds": 30, "keep_versions": 3}], "j.yaml")
    store = Store("sqlite://")
    job = store.get(store.submit([spec], now=0.0).job_ids[0])
    argv = run_request(job, tmp_path, store.id).argv
    assert argv[argv.index("--publish-every") + 1] == "30s"
    assert argv[argv.index("--keep-versions") + 1] == "3"


# -- the steps' logic, with runs in memory ----------------------------------------------------


def test_failures_after_progress_restart_without_spending_an_attempt(fake: Fake) -> None:
    # No budget at all: an ordinary job would fail for good at its first failure.
    spec = continuous(retry={"algorithm": 0, "infrastructure": 0, "backoff_seconds": 0.0})
    job_id = fake.ctx.store.submit([spec], now=fake.clock.now()).job_ids[0]
    for n in range(1, 6):
        ref = _run_of(fake, job_id)
        _checkpoint(fake.ctx.store.get(job_id), n)
        fake.backend.finish(ref, code=-9 if n % 2 else 1, log="killed" if n % 2 else "boom")
        job = _settle_failure(fake, job_id)
        assert job.status == Status.NEW and not job.final
        assert job.attempt == n + 1 and job.max_attempts == 1 + n  # none of the budget spent
        assert job.failures.restarts == n and job.failures.stalled == 0
        assert job.failures.count("algorithm") == job.failures.count("infrastructure") == 0
    details = [e.detail or "" for e in fake.ctx.store.events(job_id)]
    assert sum("restarted from its checkpoint" in d for d in details) == 5


def test_failures_without_progress_are_a_crash_loop(fake: Fake) -> None:
    spec = continuous()  # default budgets: algorithm 2, crash_loop 3
    job_id = fake.ctx.store.submit([spec], now=fake.clock.now()).job_ids[0]
    ref = _run_of(fake, job_id)
    _checkpoint(fake.ctx.store.get(job_id), 1)
    fake.backend.finish(ref, code=1, log="progress, then a bug")
    assert _settle_failure(fake, job_id).failures.restarts == 1
    for stalled in (1, 2, 3):  # the same checkpoint: no progress between these
        fake.backend.finish(_run_of(fake, job_id), code=1, log="boom")
        job = _settle_failure(fake, job_id)
        assert job.failures.stalled == stalled
    assert job.status == Status.FAILED and job.final
    last = fake.ctx.store.events(job_id)[-1].detail or ""
    assert "crash loop: 3 failures in a row with no progress" in last, last


def test_progress_between_failures_resets_the_crash_loop(fake: Fake) -> None:
    job_id = fake.ctx.store.submit([continuous()], now=fake.clock.now()).job_ids[0]
    for n in range(1, 4):
        for _ in range(2):  # two failures without progress, then progress again
            fake.backend.finish(_run_of(fake, job_id), code=1, log="boom")
            assert not _settle_failure(fake, job_id).final
        _checkpoint(fake.ctx.store.get(job_id), n)
        fake.backend.finish(_run_of(fake, job_id), code=1, log="boom")
        job = _settle_failure(fake, job_id)
        assert job.status == Status.NEW and job.failures.stalled == 0
        assert job.failures.restarts == n


def test_a_continuous_job_that_exits_0_completes_and_a_stop_stops_it(fake: Fake) -> None:
    ids = fake.ctx.store.submit([continuous(), continuous()], now=fake.clock.now()).job_ids
    fake.backend.finish(_run_of(fake, ids[0]), code=0)
    fake.ctx.store.request_stop(ids[1])
    jobs = fake.settle()
    assert [j.status for j in jobs] == [Status.COMPLETED, Status.STOPPED]


def test_progress_is_a_new_checkpoint_or_model_version(tmp_path: Path) -> None:
    store = Store("sqlite://")
    job = store.get(store.submit([continuous()], now=0.0).job_ids[0])
    out, ckpts = tmp_path / "out", tmp_path / "ck"
    job = Job(**{**job.__dict__, "output_uri": str(out), "checkpoint_uri": str(ckpts)})
    seen = [progress_of(job)]
    (ckpts / "checkpoint-000000001").mkdir(parents=True)
    seen.append(progress_of(job))
    (out / "models" / ".000001.tmp-12").mkdir(parents=True)  # being written: not yet
    seen.append(progress_of(job))
    time.sleep(0.01)
    (out / "models" / "000001").mkdir()
    seen.append(progress_of(job))
    assert seen[0] == "" and seen[1] == seen[2] != seen[3]
    assert seen[3].startswith("000001@")


# -- jobs show ------------------------------------------------------------------------------


def _publish_versions(output: Path, n: int) -> None:
    algo = get_algorithm("linear-learner")(predictor_type="binary_classifier")
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    labels = (x[:, 0] > 0).float()
    state, batches = warm_up(
        algo, None, iter([Batch(x, labels=labels, end_position=200)]), torch.device("cpu"), "t"
    )
    loop = Loop(algo)
    loop.publisher = publisher = Publisher(output, every=3600, keep=10)
    for batch in batches:
        loop.step(state, batch)
    for _ in range(n):
        publisher.publish(algo, state)


def test_jobs_show_lists_the_published_versions_newest_first(fake: Fake) -> None:
    job_id = fake.ctx.store.submit([continuous()], now=fake.clock.now()).job_ids[0]
    _run_of(fake, job_id)
    job = fake.ctx.store.get(job_id)
    assert job.output_uri is not None
    _publish_versions(Path(job.output_uri), 3)
    env = {"STREAMFIT_HOME": str(fake.ctx.home), "STREAMFIT_DATABASE_URL": fake.ctx.store.url}
    shown = CliRunner().invoke(cli, ["jobs", "show", str(job_id), "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert doc["continuous"] is True
    versions = doc["versions"]
    assert [v["version"] for v in versions] == ["000003", "000002", "000001"]
    assert all(v["rows"] == 200 and v["published_at"] for v in versions)
    assert versions[-1]["window"]["rows"] == 200 and versions[0]["window"]["rows"] == 0
    text = CliRunner().invoke(cli, ["jobs", "show", str(job_id)], env=env, terminal_width=200)
    assert text.exit_code == 0, text.output
    table = text.stdout[text.stdout.index("published versions") :]
    assert table.index("000003") < table.index("000002") < table.index("000001")
    assert "loss" in table and "window" in table


# -- real processes: a real trainer reading a real Redis stream ----------------------------------


@pytest.fixture
def local(tmp_path: Path) -> Iterator[StepContext]:
    home = tmp_path / "home"
    store = Store.open(home, f"sqlite:///{tmp_path / 'streamfit.db'}")
    backend = LocalBackend(home, Resources(cpus=2, gpus=0, memory_mb=8000), store_id=store.id)
    yield StepContext(store, backend, home, rand=random.Random(0))
    for child in (home / "runs").glob("*/child.json"):  # whatever a failed test left running
        with contextlib.suppress(OSError, ValueError, KeyError):
            os.killpg(int(json.loads(child.read_text())["pid"]), signal.SIGKILL)
    store.close()


def _until(ctx: StepContext, what: Callable[[], bool], seconds: float = 60.0) -> None:
    scheduler = Scheduler(ctx, launch_interval=0.05, monitor_interval=0.05, retry_interval=0.05)
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, [(j.status, j.failure_reason) for j in ctx.store.find()]
        scheduler.tick()
        time.sleep(0.05)


def _versions(ctx: StepContext, job_id: int) -> list[str]:
    output = ctx.store.get(job_id).output_uri
    if output is None or not (Path(output) / "models").is_dir():
        return []
    return sorted(p.name for p in (Path(output) / "models").iterdir() if p.name.isdigit())


def test_a_command_failing_at_once_every_time_ends_in_a_crash_loop(local: StepContext) -> None:
    job_id = local.store.submit([continuous()], now=time.time()).job_ids[0]
    _until(local, lambda: local.store.get(job_id).final, seconds=30)
    job = local.store.get(job_id)
    assert job.status == Status.FAILED and job.attempt == 3
    assert "crash loop: 3 failures in a row" in (local.store.events(job_id)[-1].detail or "")


@pytest.mark.slow  # two starts of a real trainer (importing torch is most of it)
def test_a_trainer_killed_restarts_from_its_checkpoint_and_publishes_on(
    local: StepContext,
    redis_url: str,  # noqa: F811
) -> None:
    stream = f"continuous-{os.getpid()}-{time.monotonic_ns()}"
    client = redis.Redis.from_url(redis_url)
    produced = 0
    producing = threading.Event()
    producing.set()

    def produce() -> None:
        nonlocal produced
        rng = random.Random(0)
        while producing.is_set():
            pipe = client.pipeline(transaction=False)
            for _ in range(100):
                x = [rng.gauss(0, 1) for _ in range(3)]
                row = {"label": int(x[0] + x[1] > 0), "features": x}
                pipe.xadd(stream, {"body": json.dumps(row)})
            pipe.execute()
            produced += 100
            time.sleep(0.1)

    spec = JobSpec.model_validate(
        {
            "name": "ctr",
            "owner": "a@example.com",
            "algorithm": "linear-learner",
            "hyperparameters": {"predictor_type": "binary_classifier", "mini_batch_size": 100},
            "inputs": {"train": f"{redis_url}?stream={stream}&group=t"},
            "continuous": True,
            "publish_every_seconds": 0.3,
            "checkpoint_seconds": 0.3,
            "retry": {"algorithm": 0, "infrastructure": 0, "backoff_seconds": 0.0},
        }
    )

    def rows_of(version: str) -> int:
        output = local.store.get(job_id).output_uri
        assert output is not None
        doc = json.loads((Path(output) / "models" / version / "metrics.json").read_text())
        return int(doc["train:rows"])

    writer = threading.Thread(target=produce)
    writer.start()
    try:
        job_id = local.store.submit([spec], now=time.time()).job_ids[0]
        _until(local, lambda: len(_versions(local, job_id)) >= 2)
        job = local.store.get(job_id)
        assert job.backend_ref is not None
        child = json.loads((local.home / "runs" / job.backend_ref / "child.json").read_text())
        os.kill(int(child["pid"]), signal.SIGKILL)
        before = _versions(local, job_id)[-1]
        _until(
            local,
            lambda: local.store.get(job_id).attempt == 2 and _versions(local, job_id)[-1] > before,
        )
        # Resumed from its checkpoint (written with each version): its state goes on from
        # the rows it had, not from none.
        after = _versions(local, job_id)[-1]
        assert rows_of(after) > rows_of(before)
        # A stop: SIGTERM makes the trainer checkpoint and publish a last version.
        local.store.request_stop(job_id)
        _until(local, lambda: local.store.get(job_id).final)
    finally:
        producing.clear()
        writer.join()
    job = local.store.get(job_id)
    assert job.status == Status.STOPPED, job.failure_reason
    assert job.attempt == 2 and job.failures.restarts == 1 and not job.failures.by_kind
    assert _versions(local, job_id)[-1] > after
