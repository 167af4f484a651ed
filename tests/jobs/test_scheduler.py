"""The scheduler stops, with a clear error, when its store is deleted, replaced or reset."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from streamfit.jobs.backends.local import LocalBackend
from streamfit.jobs.context import StepContext
from streamfit.jobs.database import database_url
from streamfit.jobs.errors import StoreReplaced
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.spec import Resources
from streamfit.jobs.store import Store


def _scheduler(home: Path, url: str | None = None) -> Scheduler:
    store = Store.open(home, url)
    backend = LocalBackend(home, Resources(cpus=2, gpus=0, memory_mb=8000), store_id=store.id)
    ctx = StepContext(store, backend, home)
    return Scheduler(ctx, notify=lambda _ctx: 0, notify_interval=0.01, verify_interval=0.05)


def _delete(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_a_tick_stops_on_a_deleted_store(tmp_path: Path) -> None:
    scheduler = _scheduler(tmp_path)
    assert scheduler.tick() == {
        "monitor": 0,
        "retry": 0,
        "tuning": 0,
        "launch": 0,
        "notify": 0,
    }
    _delete(tmp_path / "streamfit.db")
    with pytest.raises(StoreReplaced, match="was deleted while in use"):
        scheduler.tick()
    assert not (tmp_path / "streamfit.db").exists()


def _run(scheduler: Scheduler) -> tuple[threading.Thread, list[BaseException], threading.Event]:
    stop, raised = threading.Event(), []

    def run() -> None:
        try:
            scheduler.run(stop, idle_sleep=0.01)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, raised, stop


@pytest.mark.parametrize("how", ["deleted", "replaced", "reset"])
def test_a_running_scheduler_stops_when_its_store_changes(tmp_path: Path, how: str) -> None:
    path = tmp_path / "streamfit.db"
    scheduler = _scheduler(tmp_path)
    thread, raised, stop = _run(scheduler)
    time.sleep(0.2)
    assert thread.is_alive()
    if how == "deleted":
        _delete(path)
    elif how == "replaced":
        Store(f"sqlite:///{tmp_path / 'other.db'}").close()
        os.replace(tmp_path / "other.db", path)
    else:  # the same file, another store's id (as a reset PostgreSQL database would have)
        engine = sa.create_engine(database_url(f"sqlite:///{path}"))
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE store_identity SET id = :i"), {"i": "e" * 32})
        engine.dispose()
    thread.join(timeout=10)
    stop.set()
    thread.join()
    assert len(raised) == 1 and isinstance(raised[0], StoreReplaced), raised
    assert {"deleted": "deleted", "replaced": "replaced", "reset": "changed identity"}[how] in str(
        raised[0]
    )
    assert not any(t.name == "streamfit-notify" for t in threading.enumerate())
