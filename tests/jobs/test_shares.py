"""Fair share, priorities, caps and preemption: the pure order, and the launch step over a real
store with runs in memory (or real processes) and the real scheduler."""

from __future__ import annotations

import random
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from streamfit.jobs.backends.local import LocalBackend
from streamfit.jobs.backends.memory import Exit, MemoryBackend
from streamfit.jobs.clock import FakeClock
from streamfit.jobs.context import StepContext
from streamfit.jobs.database import database_url
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.settings import FairShare, Settings
from streamfit.jobs.shares import Queued, decay, decayed_charge, fair_order, run_cost
from streamfit.jobs.spec import JobSpec, Resources
from streamfit.jobs.stats import share_usage_stats
from streamfit.jobs.status import FailureKind, Status
from streamfit.jobs.store import Job, Store
from streamfit.jobs.tables import events, jobs

from .conftest import Fake

A, B, C = "a@example.com", "b@example.com", "c@example.com"


def _spec(owner: str, i: int = 0, **kw: object) -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": f"{owner[0]}-{i}",
            "owner": owner,
            "command": ["true"],
            "resources": {"cpus": 1, "memory_mb": 100},
            **kw,
        }
    )


_opened: list[Store] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def _fake(
    tmp_path: Path, url: str, fair: FairShare, cpus: float = 4, run_time: float | None = 1.0
) -> Fake:
    """The steps over a real store (closed after the test), runs in memory, a hand clock."""
    home = tmp_path / "home"
    store = Store.open(home, url)
    _opened.append(store)
    clock = FakeClock()
    script = None if run_time is None else (lambda _r: Exit(0, after=run_time))
    backend = MemoryBackend(
        clock, capacity=Resources(cpus=cpus, gpus=2, memory_mb=100_000), script=script
    )
    ctx = StepContext(store, backend, home, clock, rand=random.Random(0), fair_share=fair)
    return Fake(ctx, backend, clock)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'streamfit.db'}"


def _launches(store: Store) -> list[str]:
    """The share of each launch, in order."""
    query = (
        sa.select(jobs.c.share)
        .select_from(events.join(jobs, events.c.job_id == jobs.c.id))
        .where(events.c.to_status == Status.LAUNCHED.value)
        .order_by(events.c.id)
    )
    with store._read() as conn:
        return list(conn.execute(query).scalars())


# -- the pure order ---------------------------------------------------------------------------


def test_fair_order_spreads_a_pass_by_weight_and_follows_usage() -> None:
    queued = [Queued(i, A, 0, float(i)) for i in range(40)]
    queued += [Queued(100 + i, B, 0, float(i)) for i in range(40)]
    weights = {A: 3.0, B: 1.0}
    first = [q.share for q in fair_order(queued, {}, weights)][:40]
    assert first.count(A) == 30 and first.count(B) == 10
    # B has used more than its portion: A goes first until it has caught up
    behind = [q.share for q in fair_order(queued, {A: 0.0, B: 5.0}, weights, token=1.0)]
    assert behind[:15] == [A] * 15 and behind[15] == B
    # equal usage per weight: the older job first
    tie = fair_order([Queued(1, A, 0, 5.0), Queued(2, B, 0, 4.0)], {A: 3.0, B: 1.0}, weights)
    assert [q.id for q in tie] == [2, 1]


def test_priority_comes_before_fair_share_and_age_within_a_share() -> None:
    queued = [
        Queued(1, A, 0, 0.0),
        Queued(2, B, 2, 9.0),
        Queued(3, B, 0, 1.0),
        Queued(4, A, 5, 8.0),
    ]
    order = fair_order(queued, {A: 1e9}, {})
    assert [q.id for q in order] == [4, 2, 3, 1]  # A used much: B's older job goes first
    order = fair_order(queued, {}, {})
    assert [q.id for q in order] == [4, 2, 1, 3]  # level: by age


def test_charges_add_up_whatever_the_passes() -> None:
    whole = decayed_charge(2.0, 0.0, 100.0, 250.0, 60.0)
    parts = decay(decayed_charge(2.0, 0.0, 30.0, 30.0, 60.0), 220.0, 60.0)
    parts += decayed_charge(2.0, 30.0, 100.0, 250.0, 60.0)
    assert parts == pytest.approx(whole, rel=1e-12)
    assert run_cost(Resources(cpus=1, memory_mb=50_000), Resources(cpus=4, memory_mb=100_000)) == 2


# -- the launch step --------------------------------------------------------------------------


def test_two_owners_3_to_1_share_four_slots_and_a_newcomer_starts_at_once(
    tmp_path: Path, sqlite_url: str
) -> None:
    fair = FairShare.model_validate({"shares": {A: {"weight": 3}, B: {"weight": 1}}})
    fake = _fake(tmp_path, sqlite_url, fair, run_time=1.0)
    store, scheduler = fake.ctx.store, Scheduler(fake.ctx)
    store.submit([_spec(A, i) for i in range(400)], fake.clock.now())
    store.submit([_spec(B, i) for i in range(400)], fake.clock.now())
    newcomer, submitted = None, 0.0
    while True:
        scheduler.tick()
        shares = _launches(store)
        if shares.count(A) >= 400 or shares.count(B) >= 400:
            break
        if newcomer is None and len(shares) >= 200:
            submitted = fake.clock.now()
            (newcomer,) = store.submit([_spec(C)], submitted).job_ids
        fake.clock.advance(1.0)
    shares = [s for s in _launches(store) if s != C]
    ratios = []
    for n in range(40, len(shares)):
        head = shares[:n]
        ratios.append(head.count(A) / head.count(B))
    assert min(ratios) >= 2.7 and max(ratios) <= 3.3, (min(ratios), max(ratios))
    assert newcomer is not None
    launched = store.get(newcomer).launched_at
    assert launched is not None and launched - submitted <= 1.0  # a job's run time
    usage = store.share_usage(fake.clock.now(), fair.half_life_seconds)
    assert usage[A] / usage[B] == pytest.approx(3.0, rel=0.1)


def test_caps_hold_and_a_share_alone_borrows_what_is_idle_then_gives_it_back(
    store_url: str, tmp_path: Path
) -> None:
    fair = FairShare.model_validate(
        {"shares": {A: {"weight": 1}, B: {"weight": 1, "max_jobs": 2}, C: {"max_gpus": 1}}}
    )
    fake = _fake(tmp_path, store_url, fair, cpus=4.5, run_time=None)
    store, scheduler = fake.ctx.store, Scheduler(fake.ctx)
    # A alone: it borrows every slot
    store.submit([_spec(A, i) for i in range(8)], fake.clock.now())
    scheduler.tick()
    assert _launches(store) == [A] * 4
    # B arrives: nothing of A's is stopped; B gets the slots A's jobs give back, to its cap
    store.submit([_spec(B, i) for i in range(8)], fake.clock.now())
    fake.clock.advance(1.0)
    scheduler.tick()
    assert _launches(store) == [A] * 4
    first_a = store.find(owner=A, limit=2)
    for job in first_a:
        assert job.backend_ref is not None
        fake.backend.finish(job.backend_ref)
    fake.clock.advance(1.0)
    scheduler.tick()
    assert _launches(store)[4:] == [B, B]
    last = store.find(owner=A, limit=3)[-1]
    assert last.backend_ref is not None
    fake.backend.finish(last.backend_ref)  # B is at its cap: A takes the slot back
    fake.clock.advance(1.0)
    scheduler.tick()
    assert _launches(store)[6:] == [A]
    capped = store.find(owner=B, status=Status.NEW, limit=1)[0]
    assert capped.failure_kind == FailureKind.CAPACITY.value
    assert capped.failure_reason == (
        "capacity: its share's cap: share b@example.com is at its cap of 2 running jobs"
    )
    # a GPU cap: one GPU job of C's at a time although two GPUs are free
    gpu = [_spec(C, i, resources={"cpus": 0.1, "gpus": 1, "memory_mb": 100}) for i in range(2)]
    store.submit(gpu, fake.clock.now())
    scheduler.tick()
    assert [j.status for j in store.find(owner=C)] == [Status.LAUNCHED, Status.NEW]


def test_priority_beats_fair_share(tmp_path: Path, sqlite_url: str) -> None:
    fair = FairShare.model_validate({"shares": {A: {"weight": 1}, B: {"weight": 100}}})
    fake = _fake(tmp_path, sqlite_url, fair, cpus=1)
    store, scheduler = fake.ctx.store, Scheduler(fake.ctx)
    store.submit([_spec(B, i) for i in range(3)], fake.clock.now())
    store.submit([_spec(A, 0, priority=1), _spec(A, 1)], fake.clock.now())
    for _ in range(6):
        scheduler.tick()
        fake.clock.advance(1.0)
    assert _launches(store)[:2] == [A, B]  # A's urgent job, then B by weight, A's other last
    assert _launches(store)[-1] == A


def test_a_preemptible_job_makes_room_for_higher_priority_and_spends_no_attempt(
    store_url: str, tmp_path: Path
) -> None:
    fake = _fake(tmp_path, store_url, FairShare(), cpus=2, run_time=None)
    store, scheduler = fake.ctx.store, Scheduler(fake.ctx)
    (low,) = store.submit([_spec(A, resources={"cpus": 1}, preemptible=True)], 0).job_ids
    (keep,) = store.submit([_spec(A, 1, resources={"cpus": 1})], 0).job_ids
    for _ in range(2):
        scheduler.tick()
        fake.clock.advance(1.0)
    assert store.get(low).status == store.get(keep).status == Status.IN_PROGRESS
    (urgent,) = store.submit([_spec(B, resources={"cpus": 1}, priority=5)], 0).job_ids
    for _ in range(3):
        scheduler.tick()
        fake.clock.advance(1.0)
    assert store.get(urgent).status == Status.IN_PROGRESS
    assert store.get(keep).status == Status.IN_PROGRESS  # not preemptible: kept
    job = store.get(low)
    assert job.status == Status.NEW and job.attempt == 2 and job.max_attempts == 9
    assert job.failures.count(FailureKind.INFRASTRUCTURE.value) == 0
    assert job.failures.count(FailureKind.ALGORITHM.value) == 0
    details = [e.detail for e in store.events(low)]
    assert "preempted for job 3 (priority 5)" in details
    assert "preempted: queued again, no attempt spent" in details
    # once the urgent job is done, it runs again (as attempt 2) and completes
    for ref in (store.get(urgent).backend_ref, store.get(keep).backend_ref):
        assert ref is not None
        fake.backend.finish(ref)
    fake.clock.advance(1.0)
    scheduler.tick()
    again = store.get(low)
    assert again.status == Status.LAUNCHED and again.backend_ref == f"{store.id[:8]}-{low}-2"


def test_a_crash_between_marking_and_stopping_is_finished_by_the_monitor(
    tmp_path: Path, sqlite_url: str
) -> None:
    fake = _fake(tmp_path, sqlite_url, FairShare(), cpus=1, run_time=None)
    store, scheduler = fake.ctx.store, Scheduler(fake.ctx)
    (low,) = store.submit([_spec(A, preemptible=True)], 0).job_ids
    scheduler.tick()
    scheduler.tick()
    job = store.get(low)
    # the launch step marked it and died before it stopped the run
    store.transition(job, job.status, 0, "preempted", failure_kind="preempted")
    scheduler.tick()  # the monitor stops it
    scheduler.tick()  # ... and queues it again (and it launches again)
    assert store.get(low).attempt == 2
    assert "preempted: queued again, no attempt spent" in [e.detail for e in store.events(low)]


def test_charging_is_once_per_moment_whatever_the_passes(tmp_path: Path, sqlite_url: str) -> None:
    fair = FairShare(half_life_seconds=1e9)
    fake = _fake(tmp_path, sqlite_url, fair, cpus=2, run_time=10.0)
    store, scheduler = fake.ctx.store, Scheduler(fake.ctx)
    store.submit([_spec(A, resources={"cpus": 2})], fake.clock.now())
    for _ in range(13):
        scheduler.tick()
        store.charge_usage(fake.clock.now(), 1e9, fake.backend.capacity)  # twice: no matter
        fake.clock.advance(1.0)
    (job,) = store.find()
    assert job.status == Status.COMPLETED and job.charged_at is None
    usage = store.share_usage(fake.clock.now(), 1e9)
    assert usage == {A: pytest.approx(20.0)}  # 2 CPUs for 10 seconds


def test_schedulers_charging_at_once_charge_each_moment_once(
    tmp_path: Path, store_url: str
) -> None:
    fake = _fake(tmp_path, store_url, FairShare(half_life_seconds=1e9), cpus=2, run_time=None)
    store, scheduler = fake.ctx.store, Scheduler(fake.ctx)
    store.submit([_spec(A, i) for i in range(2)], fake.clock.now())
    scheduler.tick()
    scheduler.tick()
    other = Store.open(fake.ctx.home, store_url)
    _opened.append(other)
    start = fake.clock.now()
    barrier = threading.Barrier(2)

    def charge(s: Store, nows: list[float]) -> None:
        barrier.wait()
        for now in nows:
            s.charge_usage(now, 1e9, fake.backend.capacity)

    ahead = [start + k for k in range(1, 21)]
    behind = [t - 0.5 for t in ahead]  # a scheduler whose clock is half a second behind
    threads = [
        threading.Thread(target=charge, args=(store, ahead)),
        threading.Thread(target=charge, args=(other, behind)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # (on PostgreSQL a pass skips the jobs the other holds: a later pass charges them)
    store.charge_usage(start + 20, 1e9, fake.backend.capacity)
    ran = sum(start + 20 - (j.started_at or 0) for j in store.find())
    assert store.share_usage(start + 20, 1e9) == {A: pytest.approx(ran)}


def test_a_run_waiting_in_the_backends_queue_is_not_charged(
    tmp_path: Path, sqlite_url: str
) -> None:
    fake = _fake(tmp_path, sqlite_url, FairShare(half_life_seconds=1e9), cpus=2, run_time=3.0)
    fake.backend.pending = True
    store, scheduler = fake.ctx.store, Scheduler(fake.ctx)
    (job_id,) = store.submit([_spec(A)], fake.clock.now()).job_ids
    for tick in range(12):
        if tick == 5:
            ref = store.get(job_id).backend_ref
            assert ref is not None
            fake.backend.start(ref)
        scheduler.tick()
        fake.clock.advance(1.0)
    assert store.get(job_id).status == Status.COMPLETED
    # 1 CPU of 2 (cost 1) for its 3 seconds of running, not the 5 it waited before
    assert store.share_usage(fake.clock.now(), 1e9) == {A: pytest.approx(3.0)}


def test_a_share_can_be_named_and_older_jobs_belong_to_their_owner(sqlite_url: str) -> None:
    assert _spec(A).share == A
    assert _spec(A, share="vision").share == "vision"
    from .test_store import _store_at_revision

    Path(sqlite_url.removeprefix("sqlite:///")).touch()
    _store_at_revision(sqlite_url, "0002")
    engine = sa.create_engine(database_url(sqlite_url))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO submissions VALUES ('s', 0, 1, 'o@example.com', NULL)"))
        conn.execute(
            sa.text(
                "INSERT INTO jobs (name, owner, submission, spec, status, final, attempt, "
                "max_attempts, failures, stop_requested, priority, created_at, "
                "next_attempt_at, tags, version) VALUES ('j', 'o@example.com', 's', '{}', "
                "'New', 0, 1, 1, '{}', 0, 0, 0, 0, '{}', 1)"
            )
        )
    engine.dispose()
    store = Store(sqlite_url)
    assert [j.share for j in store.find()] == ["o@example.com"]
    store.close()


def test_settings_give_shares_weights_and_caps(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text(
        textwrap.dedent(
            """\
            fair_share:
              half_life_seconds: 3600
              shares:
                vision: {weight: 3, max_gpus: 2}
            """
        )
    )
    fair = Settings.load(env={"STREAMFIT_HOME": str(tmp_path)}).fair_share
    assert fair.half_life_seconds == 3600
    assert fair.limits("vision").max_gpus == 2 and fair.limits("other").weight == 1


def test_stats_show_usage_per_share(tmp_path: Path, sqlite_url: str) -> None:
    fair = FairShare.model_validate({"shares": {A: {"weight": 3}}, "half_life_seconds": 1e9})
    fake = _fake(tmp_path, sqlite_url, fair, cpus=2, run_time=4.0)
    store = fake.ctx.store
    store.submit([_spec(A, i) for i in range(2)] + [_spec(B)], fake.clock.now())
    fake.settle()
    store.submit([_spec(B, 1), _spec(B, 2), _spec(B, 3)], fake.clock.now())
    Scheduler(fake.ctx).tick()
    rows = {r["share"]: r for r in share_usage_stats(store, fair, fake.clock.now())}
    assert rows[A]["weight"] == 3 and rows[B]["weight"] == 1
    assert rows[A]["usage"] == pytest.approx(8.0) and rows[B]["usage"] == pytest.approx(4.0)
    assert (rows[B]["running"], rows[B]["waiting"], rows[A]["running"]) == (2, 1, 0)
    assert rows[A]["normalized_usage"] == pytest.approx(8.0 / 12.0)
    assert rows[A]["factor"] == pytest.approx(2 ** -((8 / 12) / (3 / 4)))


# -- real processes -----------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path, sqlite_url: str) -> Iterator[StepContext]:
    home = tmp_path / "home"
    store = Store.open(home, sqlite_url)
    backend = LocalBackend(home, Resources(cpus=2, gpus=0, memory_mb=8000), store_id=store.id)
    fair = FairShare.model_validate({"shares": {A: {"weight": 3}, B: {"weight": 1}}})
    yield StepContext(store, backend, home, rand=random.Random(0), fair_share=fair)
    store.close()


def _wait(ctx: StepContext, done: object, timeout: float = 60) -> None:
    assert callable(done)
    assert Scheduler(ctx).run_until(done, timeout=timeout, idle_sleep=0.02)


def test_shares_order_real_processes(local: StepContext) -> None:
    store = local.store
    nap = ["sleep", "0.2"]
    store.submit([_spec(A, i, command=nap) for i in range(8)], time_now())
    store.submit([_spec(B, i, command=nap) for i in range(8)], time_now())
    _wait(local, lambda: all(j.final for j in store.find()))
    first = _launches(store)[:8]
    assert 5 <= first.count(A) <= 7, first
    assert all(j.status == Status.COMPLETED for j in store.find())


_CHECKPOINTED = textwrap.dedent(
    """\
    import os, pathlib, signal, sys, time
    state = pathlib.Path(os.environ["STREAMFIT_CHECKPOINT_DIR"]) / "step"
    state.parent.mkdir(parents=True, exist_ok=True)
    step = int(state.read_text()) if state.exists() else 0
    print("from", step, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while step < 40:
        time.sleep(0.02)
        step += 1
        state.write_text(str(step))
    """
)


def test_a_preempted_process_resumes_from_its_checkpoint(local: StepContext) -> None:
    store = local.store
    low = _spec(
        A, command=[sys.executable, "-c", _CHECKPOINTED], resources={"cpus": 2}, preemptible=True
    )
    (low_id,) = store.submit([low], time_now()).job_ids
    _wait(local, (local.home / "jobs" / str(low_id) / "checkpoints" / "step").exists)
    (urgent,) = store.submit([_spec(B, command=["true"], priority=1)], time_now()).job_ids
    _wait(local, lambda: all(j.final for j in store.find()))
    job = store.get(low_id)
    assert job.status == Status.COMPLETED and job.attempt == 2
    assert store.get(urgent).status == Status.COMPLETED
    assert job.failures.count(FailureKind.INFRASTRUCTURE.value) == 0
    resumed = int(_log(local, job).split()[1])
    assert resumed > 0  # not from zero


def _log(ctx: StepContext, job: Job) -> str:
    assert job.backend_ref is not None
    return ctx.backend.logs(job.backend_ref)


def time_now() -> float:
    import time

    return time.time()
