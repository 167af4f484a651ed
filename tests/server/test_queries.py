"""The job table's queries: filters, keyset pages in every sort order, counts per status,
cursors that cannot break the server, and pages read from an index."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from streamfit.jobs.manager import JobManager
from streamfit.jobs.records import Job
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import Status
from streamfit.jobs.store import Store
from streamfit.server import queries
from streamfit.server.errors import ApiError
from streamfit.server.queries import (
    SORT_KEYS,
    JobFilter,
    decode_cursor,
    encode_cursor,
    job_page,
    page_jobs,
    page_query,
)


def _spec(name: str, owner: str = "ann@example.com", **tags: str) -> JobSpec:
    return JobSpec(name=name, owner=owner, command=["true"], tags=tags)


def _fill(store: Store) -> list[int]:
    """Jobs at several times, with ties in name and time, two owners, tags, two statuses."""
    ids: list[int] = []
    for t in range(6):
        specs = [
            _spec(f"lr-{t % 3}", team="ml" if t % 2 else "ops"),
            _spec(f"100%_{t}", owner="bob@example.com", team="ml"),
        ]
        ids += store.submit(specs, now=1000.0 + (t // 2)).job_ids
    for job_id in ids[::3]:
        store.transition(store.get(job_id), Status.STOPPED, 2000.0, ended_at=2000.0)
    return ids


def _walk(store: Store, filt: JobFilter, sort: str, limit: int) -> list[Job]:
    seen: list[Job] = []
    cursor = None
    for _ in range(100):
        page = page_jobs(store, filt, sort=sort, limit=limit, cursor=cursor)
        seen += page.jobs
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("paging did not end")


def _expected(jobs: list[Job], sort: str) -> list[int]:
    key = sort.removeprefix("-")
    attr = {"created": "created_at"}.get(key, key)

    def value(j: Job) -> object:
        v = getattr(j, attr)
        return v.value if isinstance(v, Status) else v

    return [j.id for j in sorted(jobs, key=lambda j: (value(j), j.id), reverse=sort[0] == "-")]


@pytest.mark.parametrize("sort", [s for k in SORT_KEYS for s in (k, f"-{k}")])
def test_pages_walk_every_job_once_in_sort_order(sqlite_manager: JobManager, sort: str) -> None:
    store = sqlite_manager.store
    _fill(store)
    every = store.find()
    walked = _walk(store, JobFilter(), sort, limit=5)
    assert [j.id for j in walked] == _expected(every, sort)


def test_pages_walk_on_postgresql_too(manager: JobManager) -> None:
    store = manager.store
    _fill(store)
    for sort in ("-created", "name", "-status"):
        assert [j.id for j in _walk(store, JobFilter(), sort, 4)] == _expected(store.find(), sort)


def test_a_job_submitted_while_paging_is_neither_skipped_nor_repeated(
    sqlite_manager: JobManager,
) -> None:
    store = sqlite_manager.store
    ids = _fill(store)
    first = page_jobs(store, JobFilter(), sort="-created", limit=5)
    store.submit([_spec("late")], now=5000.0)  # newest: before the first page
    rest = _walk_from(store, first.next_cursor)
    assert sorted(j.id for j in first.jobs + rest) == sorted(ids)


def _walk_from(store: Store, cursor: str | None) -> list[Job]:
    out: list[Job] = []
    while cursor is not None:
        page = page_jobs(store, JobFilter(), sort="-created", limit=5, cursor=cursor)
        out += page.jobs
        cursor = page.next_cursor
    return out


def test_filters_select_in_sql(sqlite_manager: JobManager) -> None:
    store = sqlite_manager.store
    _fill(store)
    every = store.find()

    def ids(**kw: object) -> list[int]:
        return sorted(j.id for j in _walk(store, JobFilter(**kw), "id", 50))  # type: ignore[arg-type]

    assert ids(status=("Stopped",)) == [j.id for j in every if j.status == Status.STOPPED]
    assert ids(owner="bob@example.com") == [j.id for j in every if j.owner.startswith("bob")]
    assert ids(tag=(("team", "ml"),)) == [j.id for j in every if j.tags["team"] == "ml"]
    # % and _ are plain characters, and case does not matter
    assert ids(name_contains="0%_") == [j.id for j in every if "0%_" in j.name]
    assert ids(name_contains="LR-1") == [j.id for j in every if j.name == "lr-1"]
    assert ids(created_after=1001.0, created_before=1002.0) == [
        j.id for j in every if j.created_at == 1001.0
    ]
    assert ids(submission=every[0].submission) == [every[0].id, every[1].id]
    assert ids(owner="nobody") == []


def test_counts_are_per_status_under_the_filter_but_its_status(
    sqlite_manager: JobManager,
) -> None:
    store = sqlite_manager.store
    _fill(store)
    page = page_jobs(store, JobFilter(status=("Stopped",), owner="bob@example.com"))
    bobs = [j for j in store.find() if j.owner == "bob@example.com"]
    assert page.counts["Stopped"] == sum(j.status == Status.STOPPED for j in bobs)
    assert page.counts["New"] == sum(j.status == Status.NEW for j in bobs) > 0
    assert sum(page.counts.values()) == len(bobs)
    assert all(j.status == Status.STOPPED for j in page.jobs)


def test_filter_from_query_parameters() -> None:
    f = JobFilter.from_query(
        [
            ("status", "failed, completed"),
            ("status", "Failed"),
            ("owner", "ann@example.com"),
            ("tag", "team=ml"),
            ("tag", "lr=0.1=x"),
            ("name", "lr"),
            ("created_after", "2026-11-01"),
            ("created_before", "1800000000"),
            ("sort", "name"),
            ("owner", ""),
        ]
    )
    assert f == JobFilter(
        status=("Failed", "Completed"),
        owner="ann@example.com",
        tag=(("team", "ml"), ("lr", "0.1=x")),
        name_contains="lr",
        created_after=1_793_491_200.0,
        created_before=1_800_000_000.0,
    )
    assert JobFilter.from_query(f.to_query()) == f


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([("status", "Running")], "not a status"),
        ([("tag", "team")], "KEY=VALUE"),
        ([("created_after", "yesterday")], "neither epoch seconds"),
        ([("created_before", "nan")], "finite"),
        ([("owner", "x" * 1000)], "longer than"),
    ],
)
def test_a_filter_that_cannot_be_used_is_a_clear_error(
    items: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(ApiError, match=message):
        JobFilter.from_query(items)


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "e30",  # {}
        encode_cursor("-created", "text", 3),  # a name where a time belongs
        encode_cursor("-created", 1.0, 2**63),  # past SQLite's integers
        encode_cursor("name", "a", 3),  # another sort's
        "W10",  # []
    ],
)
def test_cursors_not_made_for_the_page_are_refused(sqlite_manager: JobManager, cursor: str) -> None:
    with pytest.raises(ApiError, match="cursor"):
        page_jobs(sqlite_manager.store, JobFilter(), sort="-created", cursor=cursor)


def test_sort_and_limit_are_checked(sqlite_manager: JobManager) -> None:
    with pytest.raises(ApiError, match="sort"):
        page_jobs(sqlite_manager.store, JobFilter(), sort="spec")
    with pytest.raises(ApiError, match="limit"):
        page_jobs(sqlite_manager.store, JobFilter(), limit=0)
    assert decode_cursor(encode_cursor("name", "é", 4), "name") == ("é", 4)


@pytest.mark.parametrize(
    ("filt", "sort"),
    [
        (JobFilter(), "-created"),
        (JobFilter(), "name"),
        (JobFilter(), "-status"),
        (JobFilter(status=("Failed",)), "-created"),
    ],
)
def test_pages_are_read_from_an_index_not_sorted(
    sqlite_manager: JobManager, filt: JobFilter, sort: str
) -> None:
    store = sqlite_manager.store
    _fill(store)
    cursor = page_jobs(store, filt, sort=sort, limit=1).next_cursor
    query = page_query(filt, sort=sort, limit=1, cursor=cursor)
    sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        plan = " | ".join(str(r[-1]) for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


def test_job_page_is_jobs_show(sqlite_manager: JobManager) -> None:
    store = sqlite_manager.store
    [job_id] = store.submit([_spec("one", env="x")], now=1.0).job_ids
    page = job_page(store, job_id)
    assert page["id"] == job_id
    assert page["history"][0]["to"] == "New"
    assert page["spec"]["name"] == "one"


def test_counts_no_index_serves_are_kept_a_few_seconds(
    sqlite_manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_manager.store
    _fill(store)
    tagged = JobFilter(tag=(("team", "ml"),))
    before = page_jobs(store, tagged).counts["New"]
    store.submit([_spec("more", team="ml")], now=3000.0)
    again = page_jobs(store, tagged)
    assert again.counts["New"] == before  # kept: counting reads every job
    assert again.jobs[0].name == "more"  # the page itself is read fresh
    assert page_jobs(store, JobFilter()).counts["New"] == len(store.find(status=Status.NEW))
    monkeypatch.setattr(queries, "COUNTS_TTL", 0.0)
    assert page_jobs(store, tagged).counts["New"] == before + 1
