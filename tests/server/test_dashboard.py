"""The dashboard's pages over the real application and a real store (SQLite, and PostgreSQL
for the pages whose queries differ): keyset pages, htmx parts, errors as pages, the buttons'
CSRF, the sweep's objective, trends and shares. The browser tests (``browser/``) drive the
same pages in Chromium."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from streamfit.jobs.manager import JobManager
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import Status
from streamfit.server.security import Security
from tests.server.conftest import client_of, open_manager, python_job


def _rows(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-job="(\d+)"', html)]


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page's forms"
    return match.group(1)


def test_the_table_pages_with_next_links_and_counts_every_status(
    manager: JobManager,
) -> None:
    manager.submit([python_job(f"job-{i:02d}") for i in range(60)])
    with client_of(manager) as client:
        first = client.get("/")
        assert first.status_code == 200
        assert _rows(first.text) == list(range(60, 10, -1))  # newest first, 50 a page
        assert re.search(r'data-status="New">\s*New <span class="n">60</span>', first.text)
        next_href = re.search(r'id="next-page" href="([^"]+)"', first.text)
        assert next_href, "no next page link"
        second = client.get(next_href.group(1).replace("&amp;", "&"))
        assert _rows(second.text) == list(range(10, 0, -1))
        assert 'id="next-page"' not in second.text and "First page" in second.text
        # Jobs in flight: the first page refreshes itself, a later one stays put.
        assert 'hx-trigger="every 5s"' in first.text and "every 5s" not in second.text
        by_name = client.get("/", params={"name": "job-0", "sort": "name"})
        assert _rows(by_name.text) == list(range(1, 11))


def test_htmx_gets_the_table_alone_and_a_history_restore_the_whole_page(
    sqlite_manager: JobManager,
) -> None:
    sqlite_manager.submit([python_job("a"), python_job("b", owner="bob@example.com")])
    with client_of(sqlite_manager) as client:
        part = client.get("/", params={"owner": "bob@example.com"}, headers={"HX-Request": "true"})
        assert part.text.lstrip().startswith('<div id="job-list"')
        assert _rows(part.text) == [2] and "<html" not in part.text
        restore = client.get(
            "/", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
        )
        assert "<html" in restore.text
    sqlite_manager.stop(1)
    sqlite_manager.stop(2)
    with client_of(sqlite_manager) as client:
        assert "every 5s" not in client.get("/").text  # nothing in flight: no refresh


def test_a_filter_that_cannot_be_used_is_a_400_page_saying_why(
    sqlite_manager: JobManager,
) -> None:
    with client_of(sqlite_manager) as client:
        answer = client.get("/", params={"created_after": "last tuesday"})
        assert answer.status_code == 400
        assert "text/html" in answer.headers["content-type"]
        assert "created_after: &#39;last tuesday&#39; is neither" in answer.text


def test_missing_jobs_and_submissions_are_404_pages(sqlite_manager: JobManager) -> None:
    with client_of(sqlite_manager) as client:
        for path in ("/jobs/999", "/jobs/999/live", "/submissions/nothing"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert "Not found" in answer.text


def test_stop_and_retry_buttons_need_the_csrf_token_and_act_as_the_cli(
    sqlite_manager: JobManager,
) -> None:
    [job_id] = sqlite_manager.submit([python_job("waits")]).job_ids  # New: never launched
    with client_of(sqlite_manager) as client:
        page = client.get(f"/jobs/{job_id}")
        assert 'id="stop"' in page.text and 'id="retry"' not in page.text
        assert 'hx-trigger="every 5s"' in page.text  # a queued job is followed, slowly
        refused = client.post(f"/jobs/{job_id}/stop", data={"csrf_token": "forged"})
        assert refused.status_code == 403
        assert sqlite_manager.store.get(job_id).status == Status.NEW
        stopped = client.post(
            f"/jobs/{job_id}/stop", data={"csrf_token": _csrf(page.text)}, follow_redirects=False
        )
        assert stopped.status_code == 303
        assert stopped.headers["location"] == f"/jobs/{job_id}?done=stop"
        assert sqlite_manager.store.get(job_id).status == Status.STOPPED
        page = client.get(stopped.headers["location"])
        assert "Stop requested" in page.text
        assert 'id="retry"' in page.text and "hx-trigger" not in page.text
        again = client.post(f"/jobs/{job_id}/stop", data={"csrf_token": _csrf(page.text)})
        assert again.status_code == 409 and "already Stopped" in again.text
        retried = client.post(
            f"/jobs/{job_id}/retry", data={"csrf_token": _csrf(page.text)}, follow_redirects=False
        )
        assert retried.status_code == 303
    job = sqlite_manager.store.get(job_id)
    assert (job.status, job.attempt) == (Status.NEW, 2)


def test_a_read_only_token_sees_no_buttons(sqlite_manager: JobManager) -> None:
    [job_id] = sqlite_manager.submit([python_job("waits")]).job_ids
    security = Security(write_token="w" * 32, read_token="r" * 32)
    with client_of(sqlite_manager, security) as client:
        page = client.get(f"/jobs/{job_id}", headers={"Authorization": "Bearer " + "r" * 32})
        assert page.status_code == 200 and "waits" in page.text
        assert 'id="stop"' not in page.text
        writer = client.get(f"/jobs/{job_id}", headers={"Authorization": "Bearer " + "w" * 32})
        assert 'id="stop"' in writer.text


def _sweep(manager: JobManager, results: list[tuple[float, str, float]]) -> str:
    """A submission of training jobs, ended Completed with ``(learning_rate, loss, rmse)``."""
    specs = [
        JobSpec.model_validate(
            {
                "name": f"lr-{lr}-{loss}",
                "owner": "ann@example.com",
                "algorithm": "linear-learner",
                "hyperparameters": {
                    "predictor_type": "regressor",
                    "learning_rate": lr,
                    "loss": loss,
                },
                "inputs": {"train": "train.csv"},
            }
        )
        for lr, loss, _ in results
    ]
    submission = manager.submit(specs)
    now = time.time()
    for job_id, (_, _, rmse) in zip(submission.job_ids, results, strict=True):
        job = manager.store.transition(manager.store.get(job_id), Status.LAUNCHED, now)
        metrics = {"validation:rmse": rmse, "validation:mse": rmse**2, "train:rows": 100}
        manager.store.transition(
            job, Status.COMPLETED, now, started_at=now, ended_at=now + 1, metrics=metrics
        )
    return submission.id


def test_the_sweep_page_ranks_jobs_by_the_objective_and_charts_each_hyperparameter(
    manager: JobManager,
) -> None:
    results = [
        (0.001, "squared_loss", 0.9),
        (0.01, "absolute_loss", 0.4),
        (0.1, "squared_loss", 0.7),
    ]
    submission = _sweep(manager, results)
    with client_of(manager) as client:
        page = client.get(f"/submissions/{submission}")
        assert page.status_code == 200
        # rmse: lower is better, so job 2 is best and first; then 3, then 1
        assert re.findall(r'<a href="/jobs/(\d+)">', page.text) == ["2", "3", "1"]
        assert re.search(r'<tr class="best">\s*<td class="id num">2<', page.text)
        assert "lower</strong>" not in page.text and "lower is better" in page.text
        charts = re.findall(r"data-chart='([^']+)'", page.text)
        titles = [re.search(r'"title":"([^"]+)"', c).group(1) for c in charts]  # type: ignore[union-attr]
        assert titles == [
            "validation:rmse against learning_rate",
            "validation:rmse against loss",
        ]
        assert (
            '"x_log":true' in charts[0]
            and '"x_categories":["absolute_loss","squared_loss"]' in charts[1]
        )
        other = client.get(
            f"/submissions/{submission}",
            params={"objective": "train:rows"},
            headers={"HX-Request": "true"},
        )
        assert other.text.lstrip().startswith('<div id="sweep-results">')
        assert "train:rows</strong>, higher is better" in other.text


def test_trends_count_the_period_and_carry_every_chart(manager: JobManager) -> None:
    _sweep(manager, [(0.1, "squared_loss", 0.5), (0.2, "squared_loss", 0.6)])
    manager.submit([python_job("waiting")])
    with client_of(manager) as client:
        page = client.get("/trends", params={"days": "7"})
        assert page.status_code == 200
        cards = dict(
            re.findall(r'<div class="k">([^<]+)</div><div class="v[^"]*">([^<]+)<', page.text)
        )
        assert cards["Jobs"] == "3" and cards["Completed"] == "2" and cards["In flight"] == "1"
        assert cards["Success rate"] == "100.0%"
        assert page.text.count("data-chart=") == 5
        assert len(re.findall(r'"group"|"xs":\[[0-9.,]+\]', page.text)) >= 1


def _jobs_card(html: str) -> str:
    match = re.search(r'<div class="k">Jobs</div><div class="v">([^<]+)<', html)
    assert match, "no Jobs card"
    return match.group(1)


def test_trends_are_the_servers_kept_stats(sqlite_manager: JobManager) -> None:
    sqlite_manager.submit([python_job("first")])
    with client_of(sqlite_manager) as client:
        assert _jobs_card(client.get("/trends").text) == "1"
        sqlite_manager.submit([python_job("second")])
        assert _jobs_card(client.get("/trends").text) == "1"  # computed a moment ago
        assert _jobs_card(client.get("/trends?days=7").text) == "2"  # another period
        # The page's figures are the API's kept ones: the same question, the same answer.
        since = (time.time() // 86_400 - 29) * 86_400
        kept = client.get("/api/stats", params={"by": "day", "since": str(since)}).json()
        assert sum(g["jobs"] for g in kept) == 1
        client.app.state.stats.ttl = 0.0  # old now: the next asking computes them again
        client.get("/trends")
        deadline = time.monotonic() + 10
        while _jobs_card(client.get("/trends").text) != "2" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _jobs_card(client.get("/trends").text) == "2"


def test_the_shares_page_shows_each_share_waiting_and_its_weight(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "settings.yaml").write_text(
        "fair_share:\n  shares:\n    vision: {weight: 3, max_gpus: 2}\n"
    )
    manager = open_manager(tmp_path / "home", None)
    try:
        manager.submit([python_job("a"), python_job("b"), python_job("c", share="vision")])
        with client_of(manager) as client:
            page = client.get("/shares")
        assert page.status_code == 200
        rows = dict(re.findall(r'<tr data-share="([^"]+)">(.*?)</tr>', page.text, re.S))
        assert set(rows) == {"ann@example.com", "vision"}
        cells = re.findall(r'<td class="num">([^<]*)</td>', rows["vision"])
        assert cells[:5] == ["3", "0", "1.00", "0", "1"]  # weight, usage, factor, running, waiting
        assert "max_gpus=2" in rows["vision"]
        assert re.findall(r'<td class="num">([^<]*)</td>', rows["ann@example.com"])[4] == "2"
    finally:
        manager.close()


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_long_log_is_followed_by_its_new_lines_only(
    sqlite_manager: JobManager, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    code = (
        "import pathlib, time\n"
        "for i in range(10_000):\n"
        "    print(f'line {i:05d} of a long log', flush=True)\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.05)\n"
        "print('one more line', flush=True)\n"
        "time.sleep(60)\n"
    )
    [job_id] = sqlite_manager.submit([python_job("long-log", code)]).job_ids
    scheduler = sqlite_manager.scheduler()
    stop = threading.Event()
    runner = threading.Thread(target=lambda: scheduler.run_until(stop.is_set, 90), daemon=True)
    runner.start()
    try:
        with client_of(sqlite_manager) as client:

            def logged(text: str) -> bool:
                return text in sqlite_manager.logs(job_id)

            _wait_for(lambda: logged("line 09999"), "the 10,000 lines")
            page = client.get(f"/jobs/{job_id}").text
            assert "line 09999 of a long log" in page  # the page shows the tail once
            poller = re.search(r'id="log-more" hx-get="([^"]+)"', page)
            assert poller is not None
            url = html.unescape(poller[1])
            # The body polled every second carries no log: a few KB, not the 64 KB tail.
            live = client.get(f"/jobs/{job_id}/live")
            assert live.status_code == 200 and "line 05000 of a long log" not in live.text
            assert len(live.content) < 16_000, len(live.content)
            nothing = client.get(url)  # nothing new: no bytes at all
            assert nothing.status_code == 204 and nothing.content == b""
            go.touch()
            _wait_for(lambda: logged("one more line"), "the line after")
            more = client.get(url)
            assert more.status_code == 200
            assert more.text.startswith("one more line\n")
            assert "line 09999" not in more.text and len(more.content) < 1_000
            assert client.get(html.unescape(_poller(more.text))).status_code == 204
            sqlite_manager.stop(job_id)
            _wait_for(lambda: sqlite_manager.store.get(job_id).final, "the stop")
            ended = client.get(url)  # the whole panel again, without a poller
            assert ended.headers["HX-Retarget"] == "#log-panel"
            assert "one more line" in ended.text and "log-more" not in ended.text
    finally:
        stop.set()
        runner.join()


def _poller(text: str) -> str:
    match = re.search(r'id="log-more" hx-get="([^"]+)"', text)
    assert match is not None, text[-500:]
    return match[1]
