"""Trend analysis: counts, success rate, failures and retries by kind, and percentiles, checked
exactly on a store whose history is driven through real guarded transitions."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from streamfit.errors import ConfigError
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.stats import _group_column, job_stats, percentile
from streamfit.jobs.status import Status
from streamfit.jobs.store import Job, Store
from streamfit.jobs.tables import events, jobs, submissions

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
DAY2 = T0 + 86_400  # 2027-01-16 08:00 UTC


def _spec(name: str, owner: str, **tags: str) -> JobSpec:
    return JobSpec(name=name, owner=owner, command=["true"], tags=tags)


class History:
    """Moves jobs through the store with a clock under the test's control."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def submit(self, at: float, *specs: JobSpec) -> list[Job]:
        sub = self.store.submit(list(specs), now=at)
        return [self.store.get(i) for i in sub.job_ids]

    def go(
        self, job: Job, to: Status, at: float, detail: str | None = None, **values: object
    ) -> Job:
        return self.store.transition(job, to, at, detail, **values)

    def run(self, job: Job, launched: float, started: float) -> Job:
        job = self.go(job, Status.LAUNCHED, launched, launched_at=job.launched_at or launched)
        return self.go(job, Status.IN_PROGRESS, started, started_at=job.started_at or started)

    def fail(self, job: Job, at: float, kind: str) -> Job:
        failures = job.failures.failed(kind, signature=f"{kind} error")
        return self.go(job, Status.FAILED, at, failure_kind=kind, ended_at=at, failures=failures)


@pytest.fixture
def empty_store(store_url: str) -> Iterator[Store]:
    """A new store on SQLite and on PostgreSQL: the same SQL must give the same answers."""
    store = Store(store_url)
    yield store
    store.close()


@pytest.fixture
def store(empty_store: Store) -> Store:
    """Two days of jobs:

    day 1 (ann, sweep=a): j1 completes (launch wait 10, run 100); j2 fails (algorithm), is
    retried and completes (wait 20, run 170 from its first start); j3 waits once for capacity,
    fails (infrastructure), is retried, fails (algorithm) and is failed for good (wait 40,
    run 22).
    day 2: j4 (bob, sweep=b) is stopped before launch; j5 (bob, sweep=b) is running (wait 30)
    after a launch that failed and was tried again; j6 (ann, untagged) waits to be launched.
    """
    h = History(empty_store)
    j1, j2 = h.submit(T0, _spec("j1", "ann@x.org", sweep="a"), _spec("j2", "ann@x.org", sweep="a"))
    (j3,) = h.submit(T0 + 1, _spec("j3", "ann@x.org", sweep="a"))

    j1 = h.run(j1, T0 + 10, T0 + 12)
    h.go(j1, Status.COMPLETED, T0 + 112, ended_at=T0 + 112)

    j2 = h.fail(h.run(j2, T0 + 20, T0 + 22), T0 + 72, "algorithm")
    j2 = h.go(j2, Status.NEW, T0 + 80, attempt=2)
    j2 = h.run(j2, T0 + 90, T0 + 92)
    h.go(j2, Status.COMPLETED, T0 + 192, ended_at=T0 + 192)

    j3 = h.go(j3, Status.NEW, T0 + 5, "capacity: needs 1 CPUs, free 0", failure_kind="capacity")
    j3 = h.fail(h.run(j3, T0 + 41, T0 + 43), T0 + 50, "infrastructure")
    j3 = h.go(j3, Status.NEW, T0 + 51, attempt=2)
    j3 = h.fail(h.run(j3, T0 + 60, T0 + 61), T0 + 65, "algorithm")
    h.go(j3, Status.FAILED, T0 + 70, final=True)

    j4, j5 = h.submit(
        DAY2, _spec("j4", "bob@x.org", sweep="b"), _spec("j5", "bob@x.org", sweep="b")
    )
    h.submit(DAY2 + 2, _spec("j6", "ann@x.org"))  # j6 stays New
    h.go(j4, Status.STOPPED, DAY2 + 5, ended_at=DAY2 + 5)
    j5 = h.go(j5, Status.NEW, DAY2 + 10, "launch failed, will retry: fork failed")
    h.run(j5, DAY2 + 30, DAY2 + 31)
    return h.store


DAY1_EXPECTED = {
    "group": "2027-01-15",
    "jobs": 3,
    "completed": 2,
    "failed": 1,
    "stopped": 0,
    "in_flight": 0,
    "success_rate": 2 / 3,
    "failures": {"algorithm": 2, "infrastructure": 1},
    "retries": {"algorithm": 1, "capacity": 1, "infrastructure": 1},
    # waits 10, 20, 40: p90 lies 0.8 of the way from 20 to 40, p99 0.98 of the way
    "wait_to_launch": {"n": 3, "p50": 20.0, "p90": 36.0, "p99": 39.6},
    # runs 22, 100, 170 (j2's from its first start to its end)
    "run_time": {"n": 3, "p50": 100.0, "p90": 156.0, "p99": 168.6},
}
NONE = {"n": 0, "p50": None, "p90": None, "p99": None}
DAY2_EXPECTED = {
    "group": "2027-01-16",
    "jobs": 3,
    "completed": 0,
    "failed": 0,
    "stopped": 1,
    "in_flight": 2,
    "success_rate": 0.0,
    "failures": {},
    "retries": {"infrastructure": 1},  # j5's launch, tried again
    "wait_to_launch": {"n": 1, "p50": 30.0, "p90": 30.0, "p99": 30.0},
    "run_time": NONE,  # j5 has not ended; j4 never started
}


def test_by_day_counts_rates_retries_and_percentiles_exactly(store: Store) -> None:
    assert job_stats(store, by="day") == [DAY1_EXPECTED, DAY2_EXPECTED]


def test_since_keeps_the_jobs_submitted_from_then_on(store: Store) -> None:
    assert job_stats(store, by="day", since=DAY2) == [DAY2_EXPECTED]
    assert job_stats(store, by="day", since=DAY2 + 1_000) == []


def test_by_owner(store: Store) -> None:
    ann, bob = job_stats(store, by="owner")
    assert ann == {
        **DAY1_EXPECTED,
        "group": "ann@x.org",
        "jobs": 4,
        "in_flight": 1,  # j6
    }
    assert bob == {
        **DAY2_EXPECTED,
        "group": "bob@x.org",
        "jobs": 2,
        "in_flight": 1,  # j5
    }


def test_by_tag_puts_untagged_jobs_last(store: Store) -> None:
    a, b, untagged = job_stats(store, by="tag:sweep")
    assert a == {**DAY1_EXPECTED, "group": "a"}
    assert (b["group"], b["jobs"], b["stopped"], b["in_flight"]) == ("b", 2, 1, 1)
    assert untagged == {
        **DAY2_EXPECTED,
        "group": None,
        "jobs": 1,
        "stopped": 0,
        "in_flight": 1,
        "success_rate": None,  # nothing has ended
        "retries": {},
        "wait_to_launch": NONE,
    }
    assert [g["group"] for g in job_stats(store, by="tag:nosuchtag")] == [None]


def test_an_empty_store_and_a_bad_grouping(empty_store: Store) -> None:
    assert job_stats(empty_store) == []
    for by in ("week", "tag:", "owner "):
        with pytest.raises(ConfigError, match="cannot group by"):
            job_stats(empty_store, by=by)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert [percentile(values, q) for q in (0, 50, 90, 99, 100)] == [1.0, 50.5, 90.1, 99.01, 100.0]


def _bulk_store(store: Store, n: int) -> Store:
    """``n`` jobs over 10 days, 4 owners and 5 sweeps, with 4 or 6 events each: a quarter fail
    once and are retried. Written directly (the transitions are tested above); it is the
    queries' speed that is measured here."""
    job_rows, event_rows = [], []
    for i in range(1, n + 1):
        created = T0 + (i % 10) * 86_400 + i
        failed = i % 4 == 0
        ended = created + 100 + i % 50
        job_rows.append(
            {
                "id": i,
                "name": f"j{i}",
                "owner": f"u{i % 4}@x.org",
                "share": f"u{i % 4}@x.org",
                "submission": "s",
                "spec": {},
                "status": "Completed",
                "final": True,
                "attempt": 2 if failed else 1,
                "max_attempts": 8,
                "failures": {"algorithm": 1} if failed else {},
                "stop_requested": False,
                "priority": 0,
                "created_at": created,
                "launched_at": created + 5,
                "started_at": created + 6,
                "ended_at": ended,
                "next_attempt_at": created,
                "tags": {"sweep": f"s{i % 5}"},
                "version": 1,
            }
        )
        steps = [(None, "New", created), ("New", "Launched", created + 5 + i % 7)]
        steps.append(("Launched", "InProgress", created + 6))
        if failed:
            steps += [("InProgress", "Failed", created + 50), ("Failed", "New", created + 51)]
            steps += [("New", "Launched", created + 60), ("Launched", "InProgress", created + 61)]
        steps.append(("InProgress", "Completed", ended))
        for old, new, at in steps:
            event_rows.append(
                {
                    "job_id": i,
                    "at": at,
                    "from_status": old,
                    "to_status": new,
                    "attempt": 1,
                    "failure_kind": "algorithm" if new == "Failed" else None,
                    "final": new == "Completed",
                    "notified": True,
                }
            )
    with store.engine.begin() as conn:
        conn.execute(
            submissions.insert(), {"id": "s", "created_at": T0, "n_jobs": n, "owner": "u0@x.org"}
        )
        conn.execute(jobs.insert(), job_rows)
        conn.execute(events.insert(), event_rows)
    return store


def test_ten_thousand_jobs_take_well_under_a_second(empty_store: Store) -> None:
    store = _bulk_store(empty_store, 10_000)
    for by in ("day", "owner", "tag:sweep"):
        started = time.perf_counter()
        groups = job_stats(store, by=by)
        elapsed = time.perf_counter() - started
        assert sum(g["jobs"] for g in groups) == 10_000
        assert sum(g["retries"].get("algorithm", 0) for g in groups) == 2_500
        assert elapsed < 1.0, f"by {by}: {elapsed:.2f} s"


def test_owner_and_share_groups_read_the_table_not_their_index_on_sqlite() -> None:
    # SQLite walked ix_jobs_owner and fetched every row by id: twice the time by owner.
    for by, column in (("owner", "jobs.owner"), ("share", "jobs.share")):
        assert str(_group_column(by).compile(dialect=sqlite.dialect())) == f"+{column}"
        assert str(_group_column(by).compile(dialect=postgresql.dialect())) == column
