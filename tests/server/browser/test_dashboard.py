"""The dashboard in headless Chromium over jobs from a real scheduler run (see conftest)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from streamfit.jobs.manager import JobManager
from streamfit.jobs.settings import Settings
from streamfit.jobs.status import Status
from streamfit.server.app import create_app
from streamfit.server.security import Security
from streamfit.training.curves import CURVES_FILE
from tests.server.browser.conftest import Site, serve
from tests.server.conftest import python_job


def _drawn(page: Any, selector: str) -> int:
    """Charts under ``selector`` that uPlot drew (a canvas each)."""
    return int(page.locator(f"{selector} [data-drawn] canvas").count())


def test_log_of_a_running_job_follows_and_stop_stops_it(page: Any, site: Site) -> None:
    page.goto(f"/jobs/{site.ticker}")
    expect(page.locator("#job-status")).to_have_text(re.compile("Launched|InProgress"))
    log = page.locator("#log")
    expect(log).to_contain_text("step 2")
    last = max(int(n) for n in re.findall(r"step (\d+)", log.inner_text()))
    # New lines arrive without reloading the page.
    expect(log).to_contain_text(f"step {last + 3}")
    expect(page.locator("#following")).to_be_visible()
    site.screenshot(page, "job-running")
    page.click("#stop")
    expect(page.locator(".notice")).to_contain_text("Stop requested")
    expect(page.locator("#job-status")).to_have_text("Stopped", timeout=20_000)
    expect(page.locator("#following")).to_have_count(0)
    expect(page.locator("#log")).to_contain_text(f"step {last + 3}")  # the log stays, ended
    expect(page.locator("#retry")).to_be_visible()
    assert site.manager.store.get(site.ticker).status.value == "Stopped"
    site.screenshot(page, "job-stopped")


def test_failed_job_shows_attempts_and_retry(page: Any, site: Site) -> None:
    site.settled([site.failing])
    page.goto(f"/jobs/{site.failing}")
    expect(page.locator("#job-status")).to_have_text("Failed")
    expect(page.locator("#attempts tbody tr")).to_have_count(2)
    expect(page.locator("#log")).to_contain_text("no column user_id")
    expect(page.locator("#retry")).to_be_visible()


def test_job_table_lists_filters_and_tabs(page: Any, site: Site) -> None:
    site.settled()
    page.goto("/")
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(5)
    expect(page.locator(".tabs a[data-status=All] .n")).to_have_text("5")
    expect(page.locator(".tabs a[data-status=Completed] .n")).to_have_text("3")
    site.screenshot(page, "jobs")
    # Typing filters on the server as you type (htmx swaps the table, the URL follows).
    page.fill("input[name=name]", "lr0.3")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ll-lr0.3")
    expect(page).to_have_url(re.compile(r"name=lr0\.3"))
    expect(page.locator(".tabs a[data-status=All] .n")).to_have_text("1")
    # A status tab keeps the other filters; clearing the name shows the tab's jobs.
    page.fill("input[name=name]", "")
    expect(rows).to_have_count(5)
    page.click(".tabs a[data-status=Failed]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("broken-etl")
    expect(page).to_have_url(re.compile(r"status=Failed"))
    site.screenshot(page, "jobs-failed")
    page.fill("input[name=owner]", "ann@example.com")
    expect(page.locator(".empty")).to_contain_text("No job matches")


def test_job_page_shows_timeline_metrics_and_training_curve(page: Any, site: Site) -> None:
    site.settled()
    page.goto("/")
    page.click("text=ll-lr0.01")
    expect(page).to_have_url(f"{site.url}/jobs/{site.trained[0]}")
    expect(page.locator("#job-status")).to_have_text("Completed")
    expect(page.locator("#timeline li")).to_have_count(4)  # New, Launched, InProgress, done
    expect(page.locator("#metrics")).to_contain_text("validation:roc_auc_score")
    expect(page.locator("#curves [data-drawn] canvas").first).to_be_visible()
    assert _drawn(page, "#curves") >= 1
    expect(page.locator("#stop")).to_have_count(0)  # a completed job has no Stop
    site.screenshot(page, "job")
    # A run of a few hundred rows has a curve of a point or two: drawn too (the page fails on
    # a script error, which a curve of one point was).
    page.goto(f"/jobs/{site.trained[1]}")
    expect(page.locator(".chart-note")).to_contain_text(re.compile(r"[12] points?"))
    expect(page.locator("#curves [data-drawn] canvas").first).to_be_visible()


def test_trends_draws_every_chart(page: Any, site: Site) -> None:
    site.settled()
    page.goto("/")
    page.click("nav >> text=Trends")
    expect(page.locator(".card").first).to_contain_text("Jobs")
    # jobs per day, success rate, retries by kind, wait and run-time percentiles
    expect(page.locator("[data-chart]")).to_have_count(5)
    expect(page.locator("[data-drawn] canvas")).to_have_count(5)
    page.click("text=7 days")
    expect(page).to_have_url(f"{site.url}/trends?days=7")
    expect(page.locator("[data-drawn] canvas")).to_have_count(5)
    site.screenshot(page, "trends")


def test_sweep_compares_its_jobs(page: Any, site: Site) -> None:
    site.settled()
    page.goto(f"/jobs/{site.trained[0]}")
    page.click("text=submission")
    expect(page).to_have_url(f"{site.url}/submissions/{site.sweep}")
    rows = page.locator("#sweep tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#sweep thead")).to_contain_text("learning_rate")
    expect(page.locator("#sweep tbody tr.best")).to_have_count(1)
    expect(page.locator("#sweep-charts [data-drawn] canvas")).to_have_count(1)
    site.screenshot(page, "sweep")


def test_shares_lists_each_owners_share(page: Any, site: Site) -> None:
    site.settled()
    page.goto("/")
    page.click("nav >> text=Shares")
    expect(page.locator("#shares tbody tr")).to_have_count(2)  # ann's and bob's
    # bob's jobs ran: his share has used capacity, so its factor is under 1
    bob = page.locator("#shares tr[data-share='bob@example.com'] td")
    assert 0 < float(bob.nth(4).inner_text()) < 1
    expect(bob.nth(9)).to_have_text("3")  # jobs in 30 days
    site.screenshot(page, "shares")


def test_sign_in_page_is_styled_and_signs_in(page: Any, site: Site) -> None:
    token = "write-token-0123456789abcdef"
    app = create_app(manager=site.manager, security=Security(write_token=token))
    url, server, serving = serve(app)
    try:
        page.goto(f"{url}/trends")
        expect(page).to_have_url(re.compile(r"/login\?next=%2Ftrends$"))
        panel = page.locator("section.login")
        expect(panel).to_be_visible()
        # the dashboard's stylesheet applies: a white panel, the top bar, the accent button
        assert panel.evaluate("e => getComputedStyle(e).maxWidth") == "360px"
        assert page.locator("header.top").evaluate("e => getComputedStyle(e).height") == "48px"
        button = page.get_by_role("button", name="Sign in")
        assert button.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
        site.screenshot(page, "login")
        page.get_by_label("Token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/trends$"))
        expect(page.locator("h1")).to_contain_text("Trends")
    finally:
        server.should_exit = True
        serving.join(10)


def test_a_curve_of_exactly_one_point_is_drawn(page: Any, site: Site, tmp_path: Path) -> None:
    # uPlot's scales had no range for one x: the chart script threw, leaving no chart.
    output = tmp_path / "output"
    output.mkdir()
    point = {"rows": 300, "epoch": 1, "seconds": 0.2, "loss": 0.61, "rows_per_second": 1500}
    (output / CURVES_FILE).write_text(json.dumps(point) + "\n")
    settings = Settings.load(env={}, home=tmp_path / "home")
    manager = JobManager.open(settings, notifiers={})
    url, server, serving = serve(create_app(manager=manager))
    try:
        store = manager.store
        [job_id] = manager.submit([python_job("one-point")]).job_ids
        now = time.time()
        job = store.transition(store.get(job_id), Status.LAUNCHED, now, output_uri=str(output))
        job = store.transition(job, Status.IN_PROGRESS, now, started_at=now)
        store.transition(job, Status.COMPLETED, now + 0.2, ended_at=now + 0.2)
        page.goto(f"{url}/jobs/{job_id}")
        expect(page.locator(".chart-note")).to_contain_text(re.compile(r"\b1 point\b"))
        expect(page.locator("#curves [data-drawn] canvas").first).to_be_visible()
        assert _drawn(page, "#curves") == 2  # the loss, the throughput
        site.screenshot(page, "job-one-point")
    finally:
        server.should_exit = True
        serving.join(10)
        manager.close()
