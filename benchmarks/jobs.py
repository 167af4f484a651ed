"""The job manager's own speed: submission, scheduler throughput, submit-to-launch latency.

    python benchmarks/jobs.py [--jobs 10000] [--trickle 200]

1. Submission: 10,000 no-op job specs from a JSON Lines file, validated and stored in one
   transaction (jobs/s).
2. Scheduler throughput, two ways: with an in-memory backend whose runs end at once (the
   store and the steps alone: status changes/s), and with the real local backend running
   10,000 `true` commands within the machine's CPU slots (status changes/s end to end, and
   the scheduler process's own CPU use).
3. Submit-to-launch latency while capacity is free: jobs submitted one at a time to a running
   scheduler (p50/p99).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness
from streamfit.jobs.backends.local import LocalBackend, machine_capacity
from streamfit.jobs.backends.memory import Exit, MemoryBackend
from streamfit.jobs.context import StepContext
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.spec import load_specs
from streamfit.jobs.status import Status
from streamfit.jobs.store import Store


def _specs_file(folder: Path, n: int) -> Path:
    path = folder / "jobs.jsonl"
    with path.open("w") as f:
        for i in range(n):
            doc = {
                "name": f"noop-{i}",
                "owner": "bench@example.com",
                "command": ["true"],
                "tags": {"sweep": "bench"},
                "resources": {"cpus": 1, "memory_mb": 64},
            }
            f.write(json.dumps(doc) + "\n")
    return path


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def submission(folder: Path, n: int) -> tuple[Store, dict[str, Any]]:
    path = _specs_file(folder, n)
    store = Store.open(folder / "home")
    started = time.perf_counter()
    specs = load_specs([path])
    validated = time.perf_counter()
    store.submit(specs, time.time())
    done = time.perf_counter()
    return store, {
        "jobs": n,
        "seconds": done - started,
        "validate_seconds": validated - started,
        "store_seconds": done - validated,
        "jobs_per_second": n / (done - started),
    }


def _throughput(ctx: StepContext, n: int, timeout: float) -> dict[str, Any]:
    scheduler = Scheduler(ctx, launch_interval=0.05, monitor_interval=0.05, retry_interval=0.5)
    cpu0 = harness.cpu_seconds()
    started = time.perf_counter()
    ok = scheduler.run_until(
        lambda: ctx.store.counts().get("Completed", 0) == n, timeout, idle_sleep=0.01
    )
    elapsed = time.perf_counter() - started
    cpu = harness.cpu_seconds() - cpu0
    changes = len(ctx.store.events()) - n  # less the submission events
    launch = [
        e.at - ctx.store.get(e.job_id).created_at
        for e in ctx.store.events()
        if e.to_status == "Launched"
    ]
    return {
        "finished": ok,
        "seconds": elapsed,
        "status_changes": changes,
        "status_changes_per_second": changes / elapsed,
        "jobs_per_second": n / elapsed,
        "scheduler_cpu_seconds": cpu,
        "scheduler_cpu_share": cpu / elapsed,
        "submit_to_launch_p50": _percentile(launch, 0.5),
        "submit_to_launch_p99": _percentile(launch, 0.99),
    }


def latency_while_free(folder: Path, n: int, gap: float) -> dict[str, Any]:
    home = folder / "latency"
    store = Store.open(home)
    backend = LocalBackend(home, machine_capacity())
    ctx = StepContext(store, backend, home)
    stop = threading.Event()
    thread = threading.Thread(
        target=Scheduler(ctx, launch_interval=0.05, monitor_interval=0.05).run,
        args=(stop, 0.01),
        daemon=True,
    )
    thread.start()
    path = _specs_file(folder, 1)
    spec = load_specs([path])[0]
    for _ in range(n):
        store.submit([spec], time.time())
        time.sleep(gap)
    deadline = time.monotonic() + 120
    while store.counts().get("Completed", 0) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()
    launch = [
        e.at - store.get(e.job_id).created_at for e in store.events() if e.to_status == "Launched"
    ]
    return {
        "jobs": n,
        "gap_seconds": gap,
        "submit_to_launch_p50": _percentile(launch, 0.5),
        "submit_to_launch_p99": _percentile(launch, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--trickle", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "a").mkdir()
        store, results["submission"] = submission(folder / "a", args.jobs)
        print("submission", json.dumps(results["submission"]), flush=True)
        home = folder / "a" / "home"
        # Runs that have ended by the time they are polled: everything but processes.
        ctx = StepContext(store, MemoryBackend(script=lambda request: Exit(0)), home)
        results["steps_only"] = _throughput(ctx, args.jobs, timeout=600)
        print("steps only (in-memory backend)", json.dumps(results["steps_only"]), flush=True)
        (folder / "b").mkdir()
        store, _ = submission(folder / "b", args.jobs)
        home = folder / "b" / "home"
        ctx = StepContext(store, LocalBackend(home, machine_capacity()), home)
        results["local"] = _throughput(ctx, args.jobs, timeout=3600)
        print("local backend, real processes", json.dumps(results["local"]), flush=True)
        results["latency_free"] = latency_while_free(folder, args.trickle, 0.05)
        print("latency while capacity is free", json.dumps(results["latency_free"]), flush=True)
    harness.write_json(args.json, results)
    print()
    stages = [{"name": STAGES[key], **doc} for key, doc in results.items()]
    harness.report(stages, COLUMNS, label_header="stage")
    if not all(r.get("finished", True) for r in results.values()):
        raise SystemExit("some jobs did not complete in time")
    print(f"\nstatuses: {Status.COMPLETED} for all {args.jobs:,} jobs in both runs")


STAGES = {
    "submission": "submission (validate + store)",
    "steps_only": "scheduler, in-memory backend",
    "local": "scheduler, local backend (real processes)",
    "latency_free": "latency while capacity is free",
}
COLUMNS = [
    harness.Column("seconds", "seconds"),
    harness.Column("jobs/s", "jobs_per_second", ",.0f"),
    harness.Column("status changes/s", "status_changes_per_second", ",.0f"),
    harness.Column("scheduler CPU s", "scheduler_cpu_seconds"),
    harness.Column("submit-to-launch p50 ms", "submit_to_launch_p50", ",.0f", scale=1e3),
    harness.Column("p99 ms", "submit_to_launch_p99", ",.0f", scale=1e3),
]


if __name__ == "__main__":
    main()
