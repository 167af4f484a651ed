"""Tuning jobs over the API (streamfit.server.tuning_api): the checks of ``tune submit``, and
the JSON of ``tune list --json`` and ``tune show --json``, over SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from streamfit.jobs.manager import JobManager
from streamfit.jobs.tuning import Tunings, tuning_step
from streamfit.jobs.tuning.views import tuning_detail, tuning_summary


def _spec(tmp_path: Path, **change: Any) -> dict[str, Any]:
    return {
        "name": "sweep",
        "owner": "ann@example.com",
        "command": [sys.executable, "-c", "print('trial')"],
        "workdir": str(tmp_path),
        "search": {"drop-out": {"continuous": [0.1, 0.5]}},
        "objective": {"metric": "validation:loss", "direction": "minimize"},
        "strategy": "random",
        "max_jobs": 4,
        "max_parallel_jobs": 2,
        "seed": 3,
        **change,
    }


def test_a_tuning_job_submitted_listed_shown_and_stopped_as_the_cli_has_it(
    manager: JobManager, client: TestClient, tmp_path: Path
) -> None:
    answer = client.post("/api/tuning", json=_spec(tmp_path))
    assert answer.status_code == 201, answer.text
    tuning_id = answer.json()["id"]
    tunings = Tunings(manager.store)
    assert answer.json() == tuning_summary(tunings.get(tuning_id))
    tuning_step(manager.ctx)  # the scheduler's pass: two trials submitted as jobs
    shown = client.get(f"/api/tuning/{tuning_id}").json()
    assert shown == tuning_detail(tunings, tuning_id)
    assert len(shown["trials"]) == 2 and {t["status"] for t in shown["trials"]} == {"New"}
    listed = client.get("/api/tuning", params={"status": "Running"}).json()
    assert [t["id"] for t in listed] == [tuning_id] and listed[0]["trials"] == 2
    assert client.get("/api/tuning", params={"owner": "bob@example.com"}).json() == []
    stopped = client.post(f"/api/tuning/{tuning_id}/stop")
    assert stopped.status_code == 200
    assert tunings.get(tuning_id).stop_requested


def test_a_bad_tuning_spec_is_a_422_naming_the_field_and_stores_nothing(
    manager: JobManager, client: TestClient, tmp_path: Path
) -> None:
    bad = client.post("/api/tuning", json=_spec(tmp_path, max_jobs=0))
    assert bad.status_code == 422
    assert "request, tuning job ('sweep'): max_jobs" in bad.json()["detail"]
    relative = client.post("/api/tuning", json=_spec(tmp_path, workdir="runs"))
    assert relative.status_code == 422 and "absolute" in relative.json()["detail"]
    unknown = client.post("/api/tuning", json=_spec(tmp_path, warm_start=[41]))
    assert unknown.status_code == 404 and "41" in unknown.json()["detail"]
    assert Tunings(manager.store).find() == []
    assert client.get("/api/tuning/41").status_code == 404
    assert client.get("/api/tuning/0").status_code == 422
