"""The JSON API, over the real application and both stores, with jobs the real scheduler ran:
the same answers as the CLI's, and 4xx (never 500) for what cannot be answered."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from streamfit.jobs.manager import JobManager
from streamfit.jobs.stats import job_stats
from streamfit.jobs.status import Status
from streamfit.jobs.views import job_detail
from streamfit.server.api import new_text
from tests.server.conftest import python_job, run_all


def test_list_filters_sorts_and_pages(manager: JobManager, client: TestClient) -> None:
    ok = [python_job(f"ok-{i}", tags={"team": "ml"}) for i in range(3)]
    bad = [
        python_job("bad", "raise SystemExit(3)", owner="bob@example.com", retry={"algorithm": 0})
    ]
    run_all(manager, ok + bad)
    answer = client.get("/api/jobs", params={"status": "failed"})
    assert answer.status_code == 200
    body = answer.json()
    assert [j["name"] for j in body["jobs"]] == ["bad"]
    assert body["counts"]["Completed"] == 3 and body["counts"]["Failed"] == 1
    tagged = client.get("/api/jobs", params={"tag": "team=ml", "sort": "name"}).json()
    assert [j["name"] for j in tagged["jobs"]] == ["ok-0", "ok-1", "ok-2"]
    assert tagged["jobs"][0]["tags"] == {"team": "ml"}
    names: list[str] = []
    params: dict[str, object] = {"sort": "-name", "limit": 3}
    while True:
        page = client.get("/api/jobs", params=params).json()
        names += [j["name"] for j in page["jobs"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert names == ["ok-2", "ok-1", "ok-0", "bad"]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("cursor=garbage", 400, "cursor"),
        ("sort=spec", 400, "sort"),
        ("status=Running", 400, "not a status"),
        ("limit=0", 422, ""),
        ("created_after=soon", 400, "epoch seconds"),
    ],
)
def test_a_bad_list_query_is_a_clear_4xx(
    client: TestClient, query: str, status: int, message: str
) -> None:
    answer = client.get(f"/api/jobs?{query}")
    assert answer.status_code == status
    assert message in json.dumps(answer.json())


def test_a_job_in_full_is_jobs_show_json(manager: JobManager, client: TestClient) -> None:
    [job_id] = run_all(manager, [python_job("show", env={"API_TOKEN": "s3cret-value"})])
    answer = client.get(f"/api/jobs/{job_id}")
    assert answer.status_code == 200
    body = answer.json()
    expected = job_detail(manager.store.get(job_id), manager.store.events(job_id))
    assert {k: body[k] for k in expected} == expected
    assert body["spec"]["env"]["API_TOKEN"] == "***"
    assert [e["to"] for e in body["history"]][-1] == "Completed"
    assert body["history"][0]["from"] is None
    assert body["attempts"][0]["status"] == "Completed"


def test_missing_jobs_and_bad_ids_are_404_and_422(client: TestClient) -> None:
    assert client.get("/api/jobs/999").status_code == 404
    assert client.get("/api/jobs/999").json() == {"detail": "no job 999"}
    assert client.get("/api/jobs/0").status_code == 422
    assert client.get(f"/api/jobs/{2**70}").status_code == 422
    assert client.post("/api/jobs/999/stop").status_code == 404
    assert client.get("/api/jobs/999/logs").status_code == 404
    assert client.get("/api/jobs/999/curves").status_code == 404


def test_submit_checks_every_spec_and_stores_all_or_nothing(
    manager: JobManager, client: TestClient
) -> None:
    good = {"name": "a", "owner": "ann@example.com", "command": ["true"]}
    bad = {"name": "b", "owner": "not an address", "command": ["true"]}
    answer = client.post("/api/jobs", json={"jobs": [good, bad]})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("request, job 2 ('b'): owner")
    assert manager.store.find() == []
    relative = {**good, "workdir": "data"}
    answer = client.post("/api/jobs", json={"jobs": [good, relative]})
    assert answer.status_code == 422 and "absolute" in answer.json()["detail"]
    assert manager.store.find() == []
    unknown = {"name": "c", "owner": "ann@example.com", "algorithm": "no-such-thing"}
    assert client.post("/api/jobs", json={"jobs": [unknown]}).status_code == 422
    assert client.post("/api/jobs", json={"jobs": []}).status_code == 422
    answer = client.post("/api/jobs", json={"jobs": [good, good]})
    assert answer.status_code == 201
    ids = answer.json()["jobs"]
    assert [manager.store.get(i).status for i in ids] == [Status.NEW, Status.NEW]
    assert manager.store.get(ids[0]).submission == answer.json()["submission"]


def test_stop_and_retry_are_the_managers(manager: JobManager, client: TestClient) -> None:
    [job_id] = manager.submit([python_job("wait")]).job_ids
    answer = client.post(f"/api/jobs/{job_id}/stop")
    assert answer.status_code == 200 and answer.json()["status"] == "Stopped"
    again = client.post(f"/api/jobs/{job_id}/stop")
    assert again.status_code == 409 and "already Stopped" in again.json()["detail"]
    retried = client.post(f"/api/jobs/{job_id}/retry")
    assert retried.status_code == 200
    assert (retried.json()["status"], retried.json()["attempt"]) == ("New", 2)
    assert client.post(f"/api/jobs/{job_id}/retry").status_code == 409


def test_stats_are_jobs_stats(manager: JobManager, client: TestClient) -> None:
    run_all(manager, [python_job("a"), python_job("b", owner="bob@example.com")])
    for by in ("day", "owner"):
        answer = client.get("/api/stats", params={"by": by})
        assert answer.status_code == 200
        assert answer.json() == json.loads(json.dumps(job_stats(manager.store, by=by)))
    assert client.get("/api/stats", params={"by": "tag:team"}).status_code == 200
    assert client.get("/api/stats", params={"by": "week"}).status_code == 400
    assert client.get("/api/stats", params={"by": "tag"}).status_code == 400
    assert client.get("/api/stats", params={"since": "2020-01-01"}).json()[0]["jobs"] == 2
    assert client.get("/api/stats", params={"since": "1e400"}).status_code == 400


def test_logs_tail_lines_with_secrets_masked(manager: JobManager, client: TestClient) -> None:
    code = "import os\nfor i in range(50): print(f'line {i}')\nprint(os.environ['DB_PASSWORD'])"
    [job_id] = run_all(manager, [python_job("log", code, env={"DB_PASSWORD": "hunter22"})])
    answer = client.get(f"/api/jobs/{job_id}/logs", params={"tail": 3})
    assert answer.json() == {"job_id": job_id, "attempt": 1, "lines": ["line 48", "line 49", "***"]}
    assert client.get(f"/api/jobs/{job_id}/logs", params={"attempt": 2}).json()["lines"] == []


def test_following_a_log_streams_new_lines_until_the_job_ends(
    manager: JobManager, client: TestClient
) -> None:
    code = (
        "import time\nfor i in range(6):\n    print(f'step {i}', flush=True)\n    time.sleep(0.2)"
    )
    [job_id] = manager.submit([python_job("ticker", code)]).job_ids
    scheduler = manager.scheduler()
    stop = threading.Event()
    runner = threading.Thread(target=lambda: scheduler.run_until(stop.is_set, 60), daemon=True)
    runner.start()
    try:
        events: list[tuple[str, str]] = []
        with client.stream("GET", f"/api/jobs/{job_id}/logs?follow=1") as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            event = ""
            for line in answer.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((event, line.removeprefix("data: ")))
    finally:
        stop.set()
        runner.join()
    lines = [data for kind, data in events if kind == "line"]
    assert lines == [f"step {i}" for i in range(6)]
    assert events[-1] == ("end", "Completed")


@pytest.mark.parametrize(
    ("before", "now", "fresh"),
    [
        ("", "a\n", "a\n"),
        ("a\nb\n", "a\nb\n", ""),
        ("abcdef", "defgh", "gh"),  # the tail moved on: after the last text seen
        ("xyz", "123", "123"),  # more than a tail written meanwhile: all of it
    ],
)
def test_new_text_of_a_log_tail(before: str, now: str, fresh: str) -> None:
    assert new_text(before, now) == fresh


def test_curves_of_a_job(manager: JobManager, client: TestClient) -> None:
    [job_id] = run_all(manager, [python_job("curve")])
    output = manager.store.get(job_id).output_uri
    assert output is not None
    Path(output).mkdir(parents=True, exist_ok=True)
    points = [{"rows": 100, "epoch": 1, "loss": 0.7, "seconds": 1.0, "rows_per_second": 100.0}]
    (Path(output) / "curves.jsonl").write_text(json.dumps(points[0]) + '\n{"rows": 2')
    answer = client.get(f"/api/jobs/{job_id}/curves")
    assert answer.status_code == 200
    assert answer.json() == {"job_id": job_id, "points": points}


def test_the_openapi_schema_describes_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/logs",
        "/api/jobs/{job_id}/curves",
        "/api/jobs/{job_id}/stop",
        "/api/jobs/{job_id}/retry",
        "/api/stats",
    ):
        assert path in paths
    assert "JobDetail" in schema["components"]["schemas"]
    assert "/login" not in paths
