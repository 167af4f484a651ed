"""The store: schema from migrations, guarded status changes, events, bulk submission."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from streamfit.jobs import store as store_module
from streamfit.jobs.database import create_engine, database_url
from streamfit.jobs.errors import (
    NoStore,
    NotAStore,
    StaleJob,
    StoreError,
    StoreMissing,
    StoreReplaced,
    StoreUnavailable,
    TransitionError,
)
from streamfit.jobs.runs import run_name
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import TRANSITIONS, Status
from streamfit.jobs.store import Change, Failures, Store
from streamfit.jobs.tables import jobs as jobs_table
from streamfit.jobs.tables import metadata


def _spec(i: int = 0, **kw: object) -> JobSpec:
    return JobSpec.model_validate(
        {"name": f"job-{i}", "owner": "a@example.com", "command": ["true"], **kw}
    )


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    yield store
    store.close()


def test_migrations_build_exactly_the_declared_schema(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert mode == "wal"
    else:  # the plain URL was given the driver streamfit installs
        assert store.engine.dialect.driver == "psycopg"


def test_reopening_a_store_keeps_its_jobs(store_url: str) -> None:
    first = Store(store_url)
    sub = first.submit([_spec()], now=1.0)
    first.close()
    again = Store(store_url)
    assert again.get(sub.job_ids[0]).name == "job-0"
    again.close()


def test_schedulers_starting_at_once_migrate_a_new_database_once(store_url: str) -> None:
    with ThreadPoolExecutor(8) as pool:
        stores = list(pool.map(lambda _: Store(store_url), range(8)))
    (job_id,) = stores[0].submit([_spec()], now=1.0).job_ids
    assert all(s.get(job_id).name == "job-0" for s in stores)
    for s in stores:
        s.close()


def test_times_keep_their_fraction_of_a_second_and_json_its_types(store: Store) -> None:
    now = 1_800_000_000.123456  # epoch seconds: needs a double, not a 4-byte float
    spec = _spec(tags={"project": "ctr"}, hyperparameters={"lr": 0.01, "models": 32})
    job = store.get(store.submit([spec], now=now).job_ids[0])
    assert job.created_at == now and store.events(job.id)[0].at == now
    assert job.spec["hyperparameters"] == {"lr": 0.01, "models": 32}
    assert job.tags == {"project": "ctr"} and job.final is False
    done = store.transition(job, Status.STOPPED, now + 1, metrics={"auc": 0.9, "ok": True})
    again = store.get(job.id)
    assert again.final is True and again.metrics == {"auc": 0.9, "ok": True} == done.metrics


def test_every_change_is_guarded_and_has_its_event(store: Store) -> None:
    (job_id,) = store.submit([_spec()], now=1.0).job_ids
    job = store.get(job_id)
    launched = store.transition(job, Status.LAUNCHED, 2.0, "run 1-1", backend_ref="1-1")
    assert (launched.status, launched.version, launched.backend_ref) == ("Launched", 2, "1-1")
    with pytest.raises(StaleJob):  # the old copy lost: someone else moved the job
        store.transition(job, Status.LAUNCHED, 3.0)
    done = store.transition(launched, Status.COMPLETED, 4.0, metrics={"auc": 0.9})
    assert done.final and done.is_terminal
    with pytest.raises(TransitionError, match="cannot go from Completed to New"):
        store.transition(done, Status.NEW, 5.0)
    history = [(e.from_status, e.to_status, e.at, e.final) for e in store.events(job_id)]
    assert history == [
        (None, "New", 1.0, False),
        ("New", "Launched", 2.0, False),
        ("Launched", "Completed", 4.0, True),
    ]


def test_final_tells_a_job_failed_for_good_and_failures_are_typed(store: Store) -> None:
    (job_id,) = store.submit([_spec()], now=0.0).job_ids
    job = store.transition(store.get(job_id), Status.LAUNCHED, 1.0, backend_ref="r")
    failures = job.failures.failed("algorithm", "sig")
    failed = store.transition(job, Status.FAILED, 2.0, failure_kind="algorithm", failures=failures)
    assert not failed.final and not failed.is_terminal  # the retry step decides
    assert store.get(job_id).failures == failures == Failures.from_json(failures.to_json())
    assert store.find(status=Status.FAILED, final=False) == [store.get(job_id)]
    with store.engine.connect() as conn:  # the column keeps the JSON it always held
        query = sa.select(jobs_table.c.failures).where(jobs_table.c.id == job_id)
        raw = conn.execute(query).scalar_one()
    assert raw == {"algorithm": 1, "signature": "sig", "streak": 1}
    gone = store.transition(failed, Status.FAILED, 3.0, "final: budget spent", final=True)
    assert gone.final and store.find(final=True) == [store.get(job_id)] == [gone]
    assert [e.final for e in store.events(job_id)] == [False, False, False, True]
    again = store.transition(gone, Status.NEW, 4.0, attempt=2)
    assert not again.final and store.find(final=True) == []
    with pytest.raises(TypeError, match="failures must be a Failures"):
        store.transition(again, Status.LAUNCHED, 5.0, failures={"algorithm": 1})
    assert store.get(job_id).status == Status.NEW


def test_transition_table_is_respected_for_every_pair(store: Store) -> None:
    for old in Status:
        for new in Status:
            if new == old:
                continue
            (job_id,) = store.submit([_spec()], now=0.0).job_ids
            job = store.get(job_id)
            with store.engine.begin() as conn:  # put the job in ``old`` behind the store's back
                conn.execute(
                    sa.text("UPDATE jobs SET status = :s WHERE id = :i"),
                    {"s": old.value, "i": job_id},
                )
            job = store.get(job_id)
            if new in TRANSITIONS[old]:
                assert store.transition(job, new, 1.0).status == new
            else:
                with pytest.raises(TransitionError):
                    store.transition(job, new, 1.0)


def test_a_batch_skips_what_another_writer_changed(store: Store) -> None:
    ids = store.submit([_spec(i) for i in range(3)], now=0.0).job_ids
    jobs = [store.get(i) for i in ids]
    store.transition(jobs[1], Status.STOPPED, 1.0)  # "another scheduler" gets job 2 first
    results = store.apply([Change(j, Status.LAUNCHED) for j in jobs], now=2.0)
    assert [r is not None for r in results] == [True, False, True]
    assert [e.to_status for e in store.events(ids[1])] == ["New", "Stopped"]


def test_due_orders_by_priority_then_age_and_respects_backoff(store: Store) -> None:
    a = store.submit([_spec(0)], now=1.0).job_ids[0]
    b = store.submit([_spec(1, priority=5)], now=2.0).job_ids[0]
    c = store.submit([_spec(2)], now=3.0).job_ids[0]
    store.transition(store.get(c), Status.NEW, 3.0, "capacity", next_attempt_at=100.0)
    assert [j.id for j in store.due(now=10.0)] == [b, a]
    assert [j.id for j in store.due(now=100.0)] == [b, a, c]


def test_find_filters_by_owner_tag_submission_and_status(store: Store) -> None:
    sub = store.submit([_spec(0, tags={"project": "ctr"}), _spec(1, owner="b@example.com")], 0.0)
    store.submit([_spec(2, tags={"project": "ads"})], 0.0)
    assert [j.name for j in store.find(tags={"project": "ctr"})] == ["job-0"]
    assert [j.name for j in store.find(owner="b@example.com")] == ["job-1"]
    assert len(store.find(submission=sub.id)) == 2
    assert len(store.find(status=Status.NEW)) == 3 and store.find(status=Status.FAILED) == []


def test_ten_thousand_jobs_are_one_fast_transaction(store: Store) -> None:
    specs = [_spec(i) for i in range(10_000)]
    started = time.perf_counter()
    sub = store.submit(specs, now=0.0)
    elapsed = time.perf_counter() - started
    assert len(sub.job_ids) == 10_000 and store.counts() == {"New": 10_000}
    assert len(store.events()) == 10_000
    assert elapsed < 10  # measured about 0.5 s here; the benchmark reports the rate


def test_schedulers_claim_different_jobs_on_postgresql(postgresql_url: str) -> None:
    """A claim holds its jobs until it ends: a second scheduler takes the next ones instead of
    the same head of the queue, and gets the held ones back once they are released."""
    first, second = Store(postgresql_url), Store(postgresql_url)
    ids = first.submit([_spec(i) for i in range(6)], now=0.0).job_ids
    with first.claim_due(now=1.0, limit=4) as held:
        assert [j.id for j in held.items] == ids[:4]
        with second.claim_due(now=1.0, limit=4) as other:
            assert [j.id for j in other.items] == ids[4:]
        held.apply([Change(j, Status.LAUNCHED) for j in held.items[:2]], now=1.0)
    with second.claim_due(now=1.0, limit=4) as later:
        assert [j.id for j in later.items] == ids[2:]
    for s in (first, second):
        s.close()


# -- identity, and stores that cannot be used -------------------------------------------------


def _store_at_revision(url: str, revision: str) -> None:
    """A store as an older streamfit made it: its schema at ``revision``."""
    from alembic import command
    from alembic.config import Config

    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()


def test_a_store_has_an_id_for_life_and_older_stores_get_one(store_url: str) -> None:
    if store_url.startswith("sqlite"):
        Path(store_url.removeprefix("sqlite:///")).touch()
    _store_at_revision(store_url, "0001")
    engine = sa.create_engine(database_url(store_url))
    with engine.begin() as conn:  # a submission of the old store
        conn.execute(sa.text("INSERT INTO submissions VALUES ('s', 0, 1, 'a@example.com', NULL)"))
    engine.dispose()
    old = Store(store_url)  # migrated: given an id
    assert len(old.id) == 32
    old.close()
    again = Store(store_url)
    assert again.id == old.id
    again.verify()
    again.close()
    assert Store("sqlite://").id != Store("sqlite://").id


def test_reading_commands_create_no_store(tmp_path: Path) -> None:
    with pytest.raises(NoStore, match=f"no store at {tmp_path / 'home' / 'streamfit.db'} yet"):
        Store.open(tmp_path / "home", create=False)
    assert not (tmp_path / "home").exists()
    with pytest.raises(NoStore):
        Store(f"sqlite:///{tmp_path / 'x.db'}", create=False)
    assert list(tmp_path.iterdir()) == []


def test_reading_creates_no_schema_in_an_empty_postgresql_database(postgresql_url: str) -> None:
    with pytest.raises(NoStore, match="no store at postgresql://"):
        Store(postgresql_url, create=False)
    engine = sa.create_engine(database_url(postgresql_url))
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()


def test_a_home_that_held_a_store_refuses_to_start_an_empty_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store.open(home)
    store.close()
    (home / "runs" / run_name(store.id, 1, 1)).mkdir(parents=True)
    (home / "streamfit.db").unlink()
    for create in (True, False):
        with pytest.raises(StoreMissing, match=r"streamfit\.db is missing") as caught:
            Store.open(home, create=create)
        assert "restore the file" in str(caught.value)
        assert f"move {home / 'runs'} and {home / 'jobs'} away" in str(caught.value)
    assert not (home / "streamfit.db").exists()


def test_files_that_are_not_streamfit_stores_are_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(NotAStore, match=r"corrupt\.db: not a streamfit store .*not a database"):
        Store(f"sqlite:///{corrupt}")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(NotAStore, match="a database with other tables: customers"):
        Store(f"sqlite:///{other}")
    newer = tmp_path / "newer.db"
    Store(f"sqlite:///{newer}").close()
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(NotAStore, match="revision '9999' is unknown"):
        Store(f"sqlite:///{newer}")
    assert corrupt.read_bytes().startswith(b"this is not")  # left as they were
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["customers"]


def test_a_store_file_is_private(tmp_path: Path) -> None:
    Store.open(tmp_path / "home").close()
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "home" / "streamfit.db").stat().st_mode) == 0o600


def test_verify_notices_a_store_file_deleted_or_replaced(tmp_path: Path) -> None:
    path = tmp_path / "streamfit.db"
    store = Store(f"sqlite:///{path}")
    store.verify()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreReplaced, match="was deleted while in use"):
        store.verify()
    with pytest.raises(StoreError):  # and nothing is written to the deleted file
        store.submit([_spec()], now=0.0)
    store.close()
    assert not path.exists()  # no new, empty store in its place

    other = tmp_path / "other.db"
    store = Store(f"sqlite:///{path}")
    Store(f"sqlite:///{other}").close()
    os.replace(other, path)
    with pytest.raises(StoreReplaced, match="was replaced by another file"):
        store.verify()
    store.close()


def test_verify_notices_a_store_reset_under_it(store_url: str) -> None:
    store = Store(store_url)
    engine = sa.create_engine(database_url(store_url))
    with engine.begin() as conn:  # as if the database were reset and made a new store
        conn.execute(sa.text("UPDATE store_identity SET id = :i"), {"i": "f" * 32})
    with pytest.raises(StoreReplaced, match=f"it was {store.id}, now {'f' * 32}"):
        store.verify()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE store_identity"))
    with pytest.raises(StoreReplaced, match="now none"):
        store.verify()
    engine.dispose()
    store.close()


def test_a_postgresql_store_dropped_and_made_again_is_noticed(postgresql_url: str) -> None:
    first = Store(postgresql_url)
    first.submit([_spec()], now=0.0)
    engine = sa.create_engine(database_url(postgresql_url))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    second = Store(postgresql_url)  # a new store at the same URL
    assert second.id != first.id and second.find() == []
    with pytest.raises(StoreReplaced, match="changed identity"):
        first.verify()
    first.close()
    second.close()


def test_an_unreachable_database_is_a_clear_error_that_hides_its_password() -> None:
    with pytest.raises(StoreUnavailable, match=r"^postgresql://alice:\*\*\*@127\.0\.0\.1:1/sf: "):
        Store("postgresql://alice:hunter2@127.0.0.1:1/sf")
