"""The trends kept by the server: the first asking computes them, a later one within the ttl
gets them kept, and one after it gets them kept while a thread computes the next."""

from __future__ import annotations

import time

import pytest

from streamfit.errors import ConfigError
from streamfit.jobs.manager import JobManager
from streamfit.jobs.stats import job_stats
from streamfit.server.stats import StatsCache
from tests.server.conftest import python_job


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _jobs(cache: StatsCache) -> int:
    return sum(row["jobs"] for row in cache.get("owner"))


def test_stale_figures_are_served_while_the_next_are_computed(
    sqlite_manager: JobManager,
) -> None:
    store = sqlite_manager.store
    clock = _Clock()
    cache = StatsCache(store, ttl=10.0, clock=clock)
    sqlite_manager.submit([python_job("a")])
    assert cache.get("owner") == job_stats(store, by="owner")
    sqlite_manager.submit([python_job("b")])
    clock.t = 9.0
    assert _jobs(cache) == 1  # within the ttl
    clock.t = 10.0
    assert _jobs(cache) == 1  # stale: kept, while a thread computes again
    deadline = time.monotonic() + 10
    while _jobs(cache) != 2:
        assert time.monotonic() < deadline, "never computed again"
        time.sleep(0.01)
    assert cache.get("owner", since=1e12) == []  # another question: its own answer


def test_a_question_that_cannot_be_answered_is_an_error_and_is_not_kept(
    sqlite_manager: JobManager,
) -> None:
    cache = StatsCache(sqlite_manager.store)
    for _ in range(2):
        with pytest.raises(ConfigError, match="cannot group by"):
            cache.get("week")
