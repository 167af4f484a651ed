"""Crashes and concurrency: kill -9 the scheduler again and again, run two at once; every job
still ends exactly once, no run starts twice, and the history has no gap."""

from __future__ import annotations

import collections
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import TRANSITIONS, Status
from streamfit.jobs.store import Store

SCHEDULER = """
import sys, threading
from pathlib import Path
from streamfit.jobs.backends.local import Capacity, LocalBackend
from streamfit.jobs.context import StepContext
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.store import Store
home = Path(sys.argv[1])
ctx = StepContext(Store.open(home), LocalBackend(home, Capacity(4, 0, 64000)), home,
                  capacity_backoff=0.02, capacity_backoff_max=0.1)
Scheduler(ctx, launch_interval=0.05, monitor_interval=0.05, retry_interval=0.05).run(
    threading.Event(), idle_sleep=0.02)
"""

# Every start of a run appends its name to starts.log; jobs whose id is a multiple of 5 fail
# their first attempt (and are retried).
SCRIPT = (
    'echo "$STREAMFIT_JOB_ID-$STREAMFIT_ATTEMPT" >> "$STARTS"; '
    'if [ $((STREAMFIT_JOB_ID % 5)) -eq 0 ] && [ "$STREAMFIT_ATTEMPT" -eq 1 ]; then exit 1; fi'
)


def _submit(home: Path, n: int) -> Store:
    store = Store.open(home)
    specs = [
        JobSpec(
            name=f"job-{i}",
            owner="a@example.com",
            command=["sh", "-c", SCRIPT],
            env={"STARTS": str(home / "starts.log")},
            retry={"algorithm": 2, "backoff_seconds": 0},  # type: ignore[arg-type]
        )
        for i in range(n)
    ]
    store.submit(specs, now=time.time())
    return store


def _scheduler(home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", SCHEDULER, str(home)], stderr=subprocess.DEVNULL)


def _wait_all_final(store: Store, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(j.is_terminal for j in store.find()):
        assert time.monotonic() < deadline, store.counts()
        time.sleep(0.2)


def _check(store: Store, home: Path, n: int) -> None:
    jobs = store.find()
    assert len(jobs) == n
    assert all(j.status == Status.COMPLETED for j in jobs), store.counts()
    starts = (home / "starts.log").read_text().split()
    twice = [name for name, k in collections.Counter(starts).items() if k > 1]
    assert twice == [], f"runs started twice: {twice}"
    launched = []
    for job in jobs:
        events = store.events(job.id)
        assert events[0].from_status is None and events[0].to_status == "New"
        for before, after in itertools.pairwise(events):
            assert after.from_status == before.to_status, (job.id, before, after)
            if after.to_status != after.from_status:
                assert Status(after.to_status) in TRANSITIONS[Status(after.from_status)]
        assert events[-1].to_status == job.status
        assert sum(e.final for e in events) == 1
        launched += [f"{job.id}-{e.attempt}" for e in events if e.to_status == "Launched"]
        expected_attempts = 2 if job.id % 5 == 0 else 1
        assert job.attempt >= expected_attempts
    # Every start is a recorded launch, and no launch was recorded twice. (A run killed before
    # it started its command is retried under its next name and never starts.)
    assert set(starts) <= set(launched)
    assert len(launched) == len(set(launched))
    run_folders = {p.name for p in (home / "runs").iterdir() if not p.name.startswith(".")}
    assert set(launched) <= run_folders


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    n = 200
    store = _submit(home, n)
    rand = random.Random(7)
    for _ in range(25):
        proc = _scheduler(home)
        time.sleep(rand.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = _scheduler(home)
    try:
        _wait_all_final(store, timeout=240)
    finally:
        proc.kill()
        proc.wait()
    _check(store, home, n)


@pytest.mark.slow
def test_two_schedulers_at_once_never_launch_a_run_twice(tmp_path: Path) -> None:
    home = tmp_path / "home"
    n = 200
    store = _submit(home, n)
    procs = [_scheduler(home), _scheduler(home)]
    try:
        _wait_all_final(store, timeout=240)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    _check(store, home, n)
    assert os.path.exists(home / "streamfit.db")
