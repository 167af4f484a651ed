"""Fixtures for the server's tests: the real application over a real store (SQLite, and the
PostgreSQL server the job tests start), with jobs submitted, and run, by the real job
manager and scheduler."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from streamfit.jobs.manager import JobManager
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import JobSpec
from streamfit.server.app import create_app
from streamfit.server.security import Security

# The job tests' store fixtures: a SQLite file, and a database on the session's PostgreSQL.
from tests.jobs.conftest import postgresql_server, postgresql_url, store_url  # noqa: F401

#: What the test client sends as its Host: a loopback name, as a local browser would.
BASE_URL = "http://127.0.0.1:8000"


def open_manager(home: Path, url: str | None) -> JobManager:
    settings = Settings.load(
        env={},
        home=home,
        database_url=url,
        capacity_cpus=4,
        launch_interval=0.05,
        monitor_interval=0.05,
        retry_interval=0.05,
    )
    return JobManager.open(settings, notifiers={})


@pytest.fixture
def manager(tmp_path: Path, store_url: str) -> Iterator[JobManager]:  # noqa: F811
    """A job manager over each store (SQLite, PostgreSQL), local processes for runs."""
    m = open_manager(tmp_path / "home", store_url)
    yield m
    m.close()


@pytest.fixture
def sqlite_manager(tmp_path: Path) -> Iterator[JobManager]:
    """A job manager over a SQLite store only (for what does not depend on the database)."""
    m = open_manager(tmp_path / "home", None)
    yield m
    m.close()


def client_of(manager: JobManager, security: Security | None = None) -> TestClient:
    return TestClient(create_app(manager=manager, security=security), base_url=BASE_URL)


@pytest.fixture
def client(manager: JobManager) -> Iterator[TestClient]:
    """The application over ``manager``'s store, on loopback without a token."""
    with client_of(manager) as c:
        yield c


def python_job(name: str, code: str = "print('hello')", **fields: Any) -> JobSpec:
    """A job that runs ``python -c code`` (a real process when the scheduler runs it)."""
    return JobSpec.model_validate(
        {
            "name": name,
            "owner": fields.pop("owner", "ann@example.com"),
            "command": [sys.executable, "-c", code],
            **fields,
        }
    )


def run_all(manager: JobManager, specs: Sequence[JobSpec], timeout: float = 60) -> list[int]:
    """Submit ``specs`` and run the scheduler until every job has ended; their ids."""
    ids = manager.submit(specs).job_ids
    done = manager.scheduler().run_until(
        lambda: all(manager.store.get(i).final for i in ids), timeout
    )
    assert done, manager.store.counts()
    return ids
