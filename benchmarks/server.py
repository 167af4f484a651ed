"""The job server over a large SQLite store while a scheduler-like writer uses it.

    python benchmarks/server.py [--jobs 100000] [--events-per-job 10] [--requests 200]

1. A SQLite store of 100,000 jobs and 1,000,000 events, made by the store (its migrations),
   then filled by bulk insert: 50 owners, 10 teams (a tag), 90 days, every status.
2. A writer process doing what a scheduler does, 2 jobs a second: submit a job and take it
   through Launched, InProgress and Completed, each a guarded change with its event row, in
   the store's own transactions.
3. Meanwhile the real application (in this process, over ASGI: the time measured is the
   server's, without a network) answers in turn: the job table's first page, a filtered page
   (status and owner), a tag's page, a page deep in the table (by its cursor), a job page, the
   stats by day and by owner (the server's kept figures), the dashboard's first page, a tag's
   page and its trends where the dashboard is installed; then the stats computed afresh (what
   the kept figures hide). p50 and p99 of each, and every "database is locked" on either side.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from streamfit.jobs.manager import JobManager
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.stats import job_stats
from streamfit.jobs.status import Status
from streamfit.jobs.store import Store
from streamfit.server.app import create_app

DAY = 86_400.0
OUTCOMES = ["Completed"] * 80 + ["Failed"] * 10 + ["Stopped"] * 5 + ["InProgress"] * 3 + ["New"] * 2


def fill(path: Path, n_jobs: int, events_per_job: int, seed: int = 0) -> None:
    """``n_jobs`` jobs with ``events_per_job`` events each, by bulk insert into the store's own
    tables (a template row from :meth:`Store.submit` gives every column its value)."""
    store = Store(f"sqlite:///{path}")
    spec = JobSpec(name="template", owner="o@example.com", command=["true"], tags={"team": "t"})
    store.submit([spec], now=0.0)
    store.close()
    rand = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.row_factory = sqlite3.Row
    template = dict(db.execute("SELECT * FROM jobs WHERE id = 1").fetchone())
    db.execute("DELETE FROM events")
    db.execute("DELETE FROM jobs")
    db.execute("DELETE FROM submissions")
    start = time.time() - 90 * DAY
    columns = list(template)
    jobs_sql = f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    ev_sql = (
        "INSERT INTO events (job_id, at, from_status, to_status, attempt, failure_kind, detail, "
        "final, notified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    subs: list[tuple[Any, ...]] = []
    jobs: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    for i in range(1, n_jobs + 1):
        created = start + 90 * DAY * i / n_jobs
        if i % 100 == 1:
            sub_id = f"{i:016x}"
            subs.append((sub_id, created, 100, f"user{i % 50}@example.com", None))
        status = rand.choice(OUTCOMES)
        owner = f"user{i % 50}@example.com"
        team = f"team{i % 10}"
        launched = created + rand.expovariate(1 / 30)
        started = launched + 1.0
        ended = started + rand.expovariate(1 / 600) if status not in ("New", "InProgress") else None
        row = dict(template)
        row.update(
            id=i,
            name=f"lr-{i % 997}-{i}",
            owner=owner,
            share=owner,
            submission=sub_id,
            spec=json.dumps({"name": f"lr-{i}", "owner": owner, "command": ["true"]}),
            status=status,
            final=status in ("Completed", "Stopped", "Failed"),
            created_at=created,
            next_attempt_at=created,
            launched_at=launched if status != "New" else None,
            started_at=started if status != "New" else None,
            ended_at=ended,
            failure_kind="algorithm" if status == "Failed" else None,
            tags=json.dumps({"team": team}),
        )
        if "charged_at" in row:
            row["charged_at"] = ended
        jobs.append(tuple(row[c] for c in columns))
        chain: list[tuple[str | None, str]] = [
            (None, "New"),
            ("New", "Launched"),
            ("Launched", "InProgress"),
        ]
        while len(chain) < events_per_job - 1:  # retries: failed, back to New, run again
            chain += [("InProgress", "Failed"), ("Failed", "New"), ("New", "Launched")]
            chain += [("Launched", "InProgress")]
        chain = chain[: events_per_job - 1]
        chain.append((chain[-1][1], status))
        t = created
        for n, (src, dst) in enumerate(chain):
            t += 1.0
            kind = "algorithm" if dst == "Failed" else None
            final = n == len(chain) - 1 and dst in ("Completed", "Stopped", "Failed")
            events.append((i, t, src, dst, 1, kind, None, final, True))
        if len(events) >= 200_000:
            _flush(db, jobs_sql, ev_sql, subs, jobs, events)
    _flush(db, jobs_sql, ev_sql, subs, jobs, events)
    db.commit()
    db.execute("ANALYZE")
    db.commit()
    db.close()


def _flush(
    db: sqlite3.Connection,
    jobs_sql: str,
    ev_sql: str,
    subs: list[tuple[Any, ...]],
    jobs: list[tuple[Any, ...]],
    events: list[tuple[Any, ...]],
) -> None:
    db.executemany("INSERT INTO submissions VALUES (?, ?, ?, ?, ?)", subs)
    db.executemany(jobs_sql, jobs)
    db.executemany(ev_sql, events)
    subs.clear()
    jobs.clear()
    events.clear()


def writer(url: str, rate: float, stop: Any, out: Any) -> None:
    """A scheduler's writes, ``rate`` jobs a second, until ``stop`` is set."""
    store = Store(url)
    spec = JobSpec(name="live", owner="live@example.com", command=["true"], tags={"team": "w"})
    done = locked = other = 0
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            now = time.time()
            [job_id] = store.submit([spec], now=now).job_ids
            job = store.get(job_id)
            job = store.transition(job, Status.LAUNCHED, now, launched_at=now)
            job = store.transition(job, Status.IN_PROGRESS, now, started_at=now)
            store.transition(job, Status.COMPLETED, now, ended_at=now)
            done += 1
        except Exception as exc:
            if "locked" in str(exc).lower():
                locked += 1
            else:
                other += 1
                print(f"writer: {type(exc).__name__}: {exc}", file=sys.stderr)
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    out.put({"jobs_written": done, "locked": locked, "other_errors": other})
    store.close()


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--events-per-job", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200, help="per page kind")
    parser.add_argument("--rate", type=float, default=2.0, help="writer's jobs per second")
    parser.add_argument("--fresh", type=int, default=5, help="fresh stats computations")
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="streamfit-server-bench-"))
    path = folder / "streamfit.db"
    t0 = time.perf_counter()
    if not path.exists():
        fill(path, args.jobs, args.events_per_job)
    print(
        f"store {path}: {args.jobs:,} jobs, {args.jobs * args.events_per_job:,} events "
        f"({time.perf_counter() - t0:.1f} s to make)"
    )
    url = f"sqlite:///{path}"
    settings = Settings.load(env={}, home=folder, database_url=url)
    manager = JobManager.open(settings, notifiers={})
    app = create_app(manager=manager)
    ctx = multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=writer, args=(url, args.rate, stop, out))
    proc.start()
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    first = client.get("/api/jobs", params={"limit": 50}).json()
    deep = first
    for _ in range(20):  # 20 pages in: a cursor deep in the table
        deep = client.get("/api/jobs", params={"limit": 50, "cursor": deep["next_cursor"]}).json()
    pages: dict[str, tuple[str, dict[str, Any]]] = {
        "job table, first page": ("/api/jobs", {"limit": 50}),
        "filtered page (status, owner)": (
            "/api/jobs",
            {"status": "Failed", "owner": "user7@example.com", "limit": 50},
        ),
        "tag page (team=team3), by name": (
            "/api/jobs",
            {"tag": "team=team3", "sort": "name", "limit": 50},
        ),
        "page 21 (cursor)": ("/api/jobs", {"limit": 50, "cursor": deep["next_cursor"]}),
        "job page": ("/api/jobs/{id}", {}),
        "stats by day": ("/api/stats", {"by": "day"}),
        "stats by owner": ("/api/stats", {"by": "owner"}),
    }
    if client.get("/").status_code == 200:  # the dashboard is installed
        pages["dashboard first page"] = ("/", {})
        pages["dashboard, tag filter"] = ("/", {"tag": "team=team3"})
        pages["dashboard trends (30 days)"] = ("/trends", {})
    rand = random.Random(1)
    results: dict[str, tuple[float, float, int]] = {}
    server_errors = locked = 0
    for label, (route, params) in pages.items():
        n = args.requests if "stats" not in label else max(20, args.requests // 10)
        times = []
        for _ in range(n):
            target = route.replace("{id}", str(rand.randint(1, args.jobs)))
            begin = time.perf_counter()
            answer = client.get(target, params=params)
            times.append(time.perf_counter() - begin)
            if answer.status_code >= 500:
                server_errors += 1
                locked += "locked" in answer.text
            assert answer.status_code == 200, (label, answer.status_code, answer.text[:300])
        p50, p99 = percentiles(times)
        results[label] = (p50, p99, n)
    # What the server's kept stats hide: computing them afresh (every ttl, in a thread).
    month = (time.time() // DAY - 29) * DAY
    for by, since, label in (
        ("day", None, "stats by day, fresh"),
        ("owner", None, "stats by owner, fresh"),
        ("day", month, "stats by day, 30 days, fresh"),
    ):
        times = []
        for _ in range(args.fresh):
            begin = time.perf_counter()
            job_stats(manager.store, by=by, since=since)
            times.append(time.perf_counter() - begin)
        results[label] = (*percentiles(times), args.fresh)
    stop.set()
    proc.join(30)
    wrote = out.get(timeout=10)
    client.close()
    manager.close()
    print(
        f"\nwhile a writer did {args.rate:g} jobs/s ({wrote['jobs_written']} jobs written, "
        "each submitted, launched, started and completed):\n"
    )
    print("| request | p50 ms | p99 ms | requests |")
    print("|---|---:|---:|---:|")
    for label, (p50, p99, n) in results.items():
        print(f"| {label} | {p50 * 1e3:.1f} | {p99 * 1e3:.1f} | {n} |")
    print(
        f'\n"database is locked": server {locked}, writer {wrote["locked"]}; other server '
        f"errors {server_errors - locked}, other writer errors {wrote['other_errors']}"
    )


if __name__ == "__main__":
    main()
