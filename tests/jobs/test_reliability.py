"""Crashes and concurrency: kill -9 the scheduler again and again, run two at once (four on
PostgreSQL); every job still ends exactly once, no run starts twice, the history has no gap,
and every owner's email arrives (a real SMTP server on loopback counts them). Each test runs
on SQLite and on PostgreSQL."""

from __future__ import annotations

import collections
import email
import email.policy
import itertools
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import TRANSITIONS, Status
from streamfit.jobs.store import Store

SCHEDULER = """
import sys, threading
from pathlib import Path
from streamfit.jobs.backends.local import LocalBackend
from streamfit.jobs.context import StepContext
from streamfit.jobs.notify import notify_step
from streamfit.jobs.notify.email import EmailNotifier
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import Resources
from streamfit.jobs.store import Store
home, url = Path(sys.argv[1]), sys.argv[3]
settings = Settings.load(home=home, smtp_host="127.0.0.1", smtp_port=int(sys.argv[2]))
notifiers = {"email": EmailNotifier.from_settings(settings)}
store = Store(url)
backend = LocalBackend(home, Resources(cpus=4, gpus=0, memory_mb=64000), store_id=store.id)
ctx = StepContext(store, backend, home, capacity_backoff=0.02, capacity_backoff_max=0.1)
# A sender killed mid-send leaves its row claimed until the lease runs out: 10 s, not the
# default 5 minutes, so that the row is sent again while the test waits.
Scheduler(ctx, notify=lambda c: notify_step(c, notifiers, lease_seconds=10), launch_interval=0.05,
          monitor_interval=0.05, retry_interval=0.05, notify_interval=0.05).run(
    threading.Event(), idle_sleep=0.02)
"""

# Every start of a run appends its name to starts.log; jobs whose id is a multiple of 5 fail
# their first attempt (and are retried).
SCRIPT = (
    'echo "$STREAMFIT_JOB_ID-$STREAMFIT_ATTEMPT" >> "$STARTS"; '
    'if [ $((STREAMFIT_JOB_ID % 5)) -eq 0 ] && [ "$STREAMFIT_ATTEMPT" -eq 1 ]; then exit 1; fi'
)


def _jobs(url: str) -> int:
    """Jobs per test: fewer on PostgreSQL, whose tests come on top of SQLite's (each scheduler
    still meets crashes and rivals many times over)."""
    return 200 if url.startswith("sqlite") else 100


def _submit(home: Path, url: str, n: int) -> Store:
    home.mkdir(parents=True, exist_ok=True)
    store = Store(url)
    specs = [
        JobSpec(
            name=f"job-{i}",
            owner="a@example.com",
            command=["sh", "-c", SCRIPT],
            env={"STARTS": str(home / "starts.log")},
            retry={"algorithm": 2, "backoff_seconds": 0},  # type: ignore[arg-type]
            notify={"on": ["completed"], "email": [f"owner{i}@example.com"]},  # type: ignore[arg-type]
        )
        for i in range(n)
    ]
    store.submit(specs, now=time.time())
    return store


class Mailbox:
    """A real SMTP server on loopback that keeps every message's Message-ID and recipient."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((str(msg["Message-ID"]), str(msg["To"])))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


def _scheduler(home: Path, mailbox: Mailbox, url: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", SCHEDULER, str(home), str(mailbox.port), url]
    return subprocess.Popen(argv, stderr=subprocess.DEVNULL)


def _wait_all_final(store: Store, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (
        all(j.is_terminal for j in store.find())
        and len(store.notifications(status="sent")) == len(store.find())
    ):
        assert time.monotonic() < deadline, (store.counts(), len(store.notifications()))
        time.sleep(0.2)


def _check_mail(store: Store, mailbox: Mailbox, n: int) -> None:
    """Each owner told once. A scheduler killed between the server accepting a message and
    the store recording it sends it again, with the same Message-ID: never lost, and never
    twice for a receiver that drops duplicate Message-IDs."""
    ids: dict[str, set[str]] = collections.defaultdict(set)
    for message_id, to in mailbox.received:
        ids[to].add(message_id)
    assert sorted(ids) == sorted(f"owner{i}@example.com" for i in range(n))
    assert all(len(v) == 1 for v in ids.values()), "two different messages for one event"
    assert len(store.notifications(status="sent")) == n


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
    # Every run folder is named for this store: ``<store id>-<job id>-<attempt>``.
    folders = [p.name for p in (home / "runs").iterdir() if not p.name.startswith(".")]
    assert all(name.startswith(f"{store.id[:8]}-") for name in folders)
    assert set(launched) <= {name.split("-", 1)[1] for name in folders}


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, mailbox: Mailbox, store_url: str
) -> None:
    home = tmp_path / "home"
    n = _jobs(store_url)
    store = _submit(home, store_url, n)
    rand = random.Random(7)
    for _ in range(25):
        proc = _scheduler(home, mailbox, store_url)
        time.sleep(rand.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = _scheduler(home, mailbox, store_url)
    try:
        _wait_all_final(store, timeout=240)
    finally:
        proc.kill()
        proc.wait()
    _check(store, home, n)
    _check_mail(store, mailbox, n)
    store.close()


def _at_once(home: Path, mailbox: Mailbox, url: str, n: int, *, schedulers: int) -> None:
    store = _submit(home, url, n)
    procs = [_scheduler(home, mailbox, url) for _ in range(schedulers)]
    try:
        _wait_all_final(store, timeout=240)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    _check(store, home, n)
    _check_mail(store, mailbox, n)
    assert len(mailbox.received) == n  # no crash here: not even a duplicate to drop
    store.close()


@pytest.mark.slow
def test_two_schedulers_at_once_never_launch_a_run_twice(
    tmp_path: Path, mailbox: Mailbox, store_url: str
) -> None:
    _at_once(tmp_path / "home", mailbox, store_url, _jobs(store_url), schedulers=2)


@pytest.mark.slow
def test_four_schedulers_share_a_postgresql_store(
    tmp_path: Path, mailbox: Mailbox, postgresql_url: str
) -> None:
    _at_once(tmp_path / "home", mailbox, postgresql_url, _jobs(postgresql_url), schedulers=4)
