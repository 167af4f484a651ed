"""Fixtures for the job manager's tests: a store (SQLite, and PostgreSQL on a real server the
session starts) with a local backend in a temporary home (``ctx``: real processes), or with
runs in memory and a fake clock (``fake``: the steps' own logic, fast)."""

from __future__ import annotations

import itertools
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_postgresql import factories
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from streamfit.jobs.backends.local import LocalBackend
from streamfit.jobs.backends.memory import MemoryBackend
from streamfit.jobs.clock import FakeClock
from streamfit.jobs.context import StepContext
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.spec import JobSpec, Resources
from streamfit.jobs.store import Job, Store
from tests.jobs.pg_ctl_as_user import find_pg_ctl

#: Set to 0 to leave PostgreSQL out on purpose; otherwise a missing server fails the tests
#: that need it, so that CI can never pass without having run them.
WANT_POSTGRES = os.environ.get("STREAMFIT_TEST_POSTGRES", "1") != "0"

# One throwaway cluster for the session, on loopback and a free port; pg_ctl_as_user.py runs
# it as an unprivileged user when the tests run as root (as CI does).
postgresql_server = factories.postgresql_proc(
    executable=str(Path(__file__).with_name("pg_ctl_as_user.py")),
    host="127.0.0.1",
    port=None,
    # No durability needed: a throwaway cluster whose data dies with the session.
    postgres_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
)

_databases = itertools.count()


@pytest.fixture
def postgresql_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty database on the session's server, as a plain ``postgresql://`` URL."""
    if not WANT_POSTGRES:
        pytest.skip("STREAMFIT_TEST_POSTGRES=0")
    if find_pg_ctl() is None:
        pytest.fail(
            "PostgreSQL's server (pg_ctl) is not installed: `make test` installs it with "
            "apt-get; set STREAMFIT_PG_CTL to another one, or STREAMFIT_TEST_POSTGRES=0 to "
            "leave these tests out"
        )
    server: PostgreSQLExecutor = request.getfixturevalue("postgresql_server")
    name = f"streamfit_{os.getpid()}_{next(_databases)}"
    with DatabaseJanitor(user=server.user, host=server.host, port=server.port, dbname=name):
        yield f"postgresql://{server.user}@{server.host}:{server.port}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives, once on each database the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'streamfit.db'}"
    url: str = request.getfixturevalue("postgresql_url")
    return url


@pytest.fixture
def ctx(tmp_path: Path, store_url: str) -> Iterator[StepContext]:
    home = tmp_path / "home"
    store = Store.open(home, store_url)
    backend = LocalBackend(home, Resources(cpus=2, gpus=0, memory_mb=8000), store_id=store.id)
    yield StepContext(
        store, backend, home, rand=random.Random(0), capacity_backoff=0.05, capacity_backoff_max=0.2
    )
    store.close()


@dataclass
class Fake:
    """The steps over a real store, with runs in memory (``backend``) and time that moves only
    when the test says (``clock``)."""

    ctx: StepContext
    backend: MemoryBackend
    clock: FakeClock

    def settle(self, *, seconds: float = 1.0, ticks: int = 500) -> list[Job]:
        """Tick every step, ``seconds`` apart on the clock, until every job has ended."""
        scheduler = Scheduler(self.ctx)
        for _ in range(ticks):
            scheduler.tick()
            if all(j.final for j in self.ctx.store.find()):
                return self.ctx.store.find()
            self.clock.advance(seconds)
        raise AssertionError(f"not settled after {ticks} ticks: {self.ctx.store.counts()}")


@pytest.fixture
def fake(tmp_path: Path, store_url: str) -> Iterator[Fake]:
    home = tmp_path / "home"
    store = Store.open(home, store_url)
    clock = FakeClock()
    backend = MemoryBackend(clock, capacity=Resources(cpus=2, gpus=0, memory_mb=8000))
    ctx = StepContext(
        store,
        backend,
        home,
        clock,
        rand=random.Random(0),
        capacity_backoff=0.05,
        capacity_backoff_max=0.2,
    )
    yield Fake(ctx, backend, clock)
    store.close()


def command_spec(code: str, **kw: object) -> JobSpec:
    """A job that runs ``python -c code``; ``kw`` are further spec fields."""
    return JobSpec.model_validate(
        {
            "name": kw.pop("name", "job"),
            "owner": "a@example.com",
            "command": [sys.executable, "-c", code],
            **kw,
        }
    )
