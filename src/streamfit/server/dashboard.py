"""The web dashboard: server-rendered pages over the same queries as the JSON API.

``/`` the job table (status tabs, filters, sort, keyset pages), ``/trends`` the trend charts,
``/jobs/{id}`` one job (timeline, attempts, followed log, stop and retry, training curves),
``/submissions/{id}`` a sweep (its jobs' hyperparameters and metrics, the objective against
each hyperparameter). htmx swaps the parts that change; charts are drawn by
``static/dashboard.js`` from the data the page carries in ``data-chart`` attributes, so the
Content-Security-Policy needs no inline script.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape

from streamfit.jobs.errors import JobError, NoSuchJob
from streamfit.jobs.stats import share_usage_stats
from streamfit.jobs.status import ACTIVE, Status
from streamfit.jobs.store import Job
from streamfit.jobs.views import attempts_of, shown_spec
from streamfit.server import charts
from streamfit.server.curves import read_curves
from streamfit.server.errors import ApiError
from streamfit.server.pages import page_context, render, render_text
from streamfit.server.queries import SORT_KEYS, JobFilter, JobPage, page_jobs
from streamfit.server.security import Access, access_of
from streamfit.server.state import manager_of, store_of
from streamfit.server.stats import stats_as_of, stats_of
from streamfit.server.sweeps import sweep_view

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: Jobs a page of the table shows.
PAGE_SIZE = 50
#: The end of a job's log the page shows and follows.
LOG_TAIL_BYTES = 64 * 1024
#: Characters of the log's end a poll for more names (found again in the next tail).
LOG_ANCHOR_CHARS = 200
#: Trend periods offered, in days.
PERIODS = (7, 30, 90, 365)
#: What a redirect after a button may say (by key: no text from the request is shown).
NOTICES = {
    "stop": "Stop requested: the job ends Stopped once its run has exited.",
    "retry": "Retry asked for: the job is queued as its next attempt.",
}
_IN_FLIGHT = (Status.NEW, Status.LAUNCHED, Status.IN_PROGRESS)
_SORTS = [
    ("-created", "newest first"),
    ("created", "oldest first"),
    ("name", "name"),
    ("status", "status"),
    ("owner", "owner"),
    ("-id", "id, descending"),
]


def _partial(request: Request) -> bool:
    """Whether htmx asked for a part of the page (a history restore wants the whole)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def _query(items: list[tuple[str, str]]) -> str:
    return urllib.parse.urlencode([(k, v) for k, v in items if v != ""])


@router.get("/", response_class=HTMLResponse)
def job_table(request: Request) -> Response:
    """The job table: tabs by status (with counts under the other filters), filters, sort and
    a keyset "next" page; htmx replaces only ``#job-list``."""
    params = request.query_params
    sort = params.get("sort") or "-created"
    cursor = params.get("cursor") or None
    error = None
    try:
        filt = JobFilter.from_query(params.multi_items())
        page = page_jobs(store_of(request), filt, sort=sort, limit=PAGE_SIZE, cursor=cursor)
    except ApiError as exc:  # a filter typed wrong: say so above an empty table
        error = str(exc)
        filt, sort, cursor = JobFilter(), "-created", None
        page = JobPage([], None, {})
    # Links keep the filters as the person typed them (dates stay dates).
    kept = [(k, v) for k, v in params.multi_items() if k not in ("status", "cursor") and v]
    tabs = [("", "All", sum(page.counts.values()))] + [
        (s.value, s.value, page.counts.get(s.value, 0)) for s in Status
    ]
    status = ",".join(filt.status)
    context = page_context(
        request,
        "jobs",
        jobs=[_row(j) for j in page.jobs],
        tabs=[
            {
                "status": value,
                "label": label,
                "n": n,
                "href": "/?" + _query([*kept, ("status", value)]),
            }
            for value, label, n in tabs
        ],
        status=status,
        params=params,
        sort=sort,
        sorts=[(k, label) for k, label in _SORTS if k.removeprefix("-") in SORT_KEYS],
        next_href=(
            "/?" + _query([*kept, ("status", status), ("cursor", page.next_cursor)])
            if page.next_cursor
            else None
        ),
        first_href="/?" + _query([*kept, ("status", status)]) if cursor else None,
        filtered=bool(kept and any(k != "sort" for k, _ in kept)) or bool(status),
        live=cursor is None and any(page.counts.get(s.value) for s in _IN_FLIGHT),
        error=error,
    )
    code = 400 if error else 200
    return render("jobs_list.html" if _partial(request) else "jobs.html", context, code)


def _row(job: Job) -> dict[str, Any]:
    run = None
    if job.started_at is not None:
        run = (job.ended_at or time.time()) - job.started_at
    return {
        "id": job.id,
        "name": job.name,
        "owner": job.owner,
        "status": job.status.value,
        "retrying": job.status == Status.FAILED and not job.final,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "tags": job.tags,
        "created_at": job.created_at,
        "run_time": run,
        "failure_kind": job.failure_kind,
        "failure_reason": (job.failure_reason or "").splitlines()[0][:300]
        if job.failure_reason
        else None,
        "submission": job.submission,
    }


@router.get("/trends", response_class=HTMLResponse)
def trends(request: Request) -> Response:
    """Jobs per day by outcome, success rate, retries by kind, wait and run-time
    percentiles, over the last ``days`` (by the day jobs were submitted)."""
    try:
        days = int(request.query_params.get("days", "30"))
    except ValueError:
        days = 30
    days = days if days in PERIODS else 30
    stats, computed = _daily_stats(request, days)
    ended = sum(g["completed"] + g["failed"] + g["stopped"] for g in stats)
    completed = sum(g["completed"] for g in stats)
    totals = {
        "jobs": sum(g["jobs"] for g in stats),
        "completed": completed,
        "failed": sum(g["failed"] for g in stats),
        "stopped": sum(g["stopped"] for g in stats),
        "in_flight": sum(g["in_flight"] for g in stats),
        "retries": sum(sum(g["retries"].values()) for g in stats),
        "success_rate": completed / ended if ended else None,
    }
    chart_list = [
        charts.outcome_chart(stats),
        charts.success_rate_chart(stats),
        charts.retries_chart(stats),
        *charts.duration_charts(stats),
    ]
    context = page_context(
        request,
        "trends",
        days=days,
        periods=PERIODS,
        totals=totals,
        charts=chart_list,
        computed=computed,
    )
    return render("trends.html", context)


def _daily_stats(request: Request, days: int) -> tuple[list[dict[str, Any]], float]:
    """``job_stats`` by day over the last ``days`` (whole days, today the last), and when it
    was computed: the application's kept figures (:mod:`.stats`), as ``GET /api/stats``."""
    now = time.time()
    since = (now // 86_400 - days + 1) * 86_400
    stats, computed = stats_as_of(request, "day", since)
    return charts.daily(stats, since, now), computed


@router.get("/shares", response_class=HTMLResponse)
def shares(request: Request) -> Response:
    """Fair share now: each share's weight, usage (decayed), factor, what its jobs hold and
    wait for, and its caps (the figures of ``jobs stats --by share``), with how its jobs of
    the last 30 days fared."""
    manager = manager_of(request)
    fair = manager.settings.fair_share
    now = time.time()
    rows = share_usage_stats(manager.store, fair, now)
    since = (now // 86_400 - 29) * 86_400
    recent = {g["group"]: g for g in stats_of(request, "share", since)}
    context = page_context(
        request,
        "shares",
        shares=rows,
        recent=recent,
        half_life=fair.half_life_seconds,
    )
    return render("shares.html", context)


def _job_context(request: Request, job_id: int, *, with_log: bool = True) -> dict[str, Any]:
    """What the job page shows; ``with_log=False``: all but the log (the page keeps its own)."""
    store = store_of(request)
    job = store.get(job_id)
    history = store.events(job_id)
    log = _read_log(request, job_id) if with_log else ""
    curves = read_curves(job)
    waited = None
    launches = [e.at for e in history if e.to_status == Status.LAUNCHED.value]
    if launches:
        waited = launches[0] - job.created_at
    metrics = sorted((job.metrics or {}).items())
    writer = access_of(request) >= Access.WRITE
    return page_context(
        request,
        "jobs",
        job=job,
        row=_row(job),
        history=history,
        attempts=attempts_of(job, history),
        log=log,
        log_truncated=len(log.encode()) >= LOG_TAIL_BYTES,
        log_query=_log_query(job.attempt, log),
        log_kept=not with_log,
        log_alone=False,
        charts=charts.curve_charts(curves),
        curve_rows=len(curves),
        waited=waited,
        metrics=metrics,
        spec=shown_spec(job),
        # The buttons show only to those whose token allows pressing them.
        can_stop=writer and not job.final and not job.stop_requested,
        can_retry=writer and job.final and job.status in (Status.FAILED, Status.STOPPED),
        notice=NOTICES.get(request.query_params.get("done", "")),
        # A running job is followed closely; a queued one may wait for hours.
        poll="1s" if job.status in ACTIVE else "5s",
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_view(request: Request, job_id: int) -> Response:
    """One job; while it has not ended, its body polls :func:`job_live` every second."""
    try:
        return render("job.html", _job_context(request, job_id))
    except NoSuchJob as exc:
        return _not_found(request, str(exc))


@router.get("/jobs/{job_id}/live", response_class=HTMLResponse)
def job_live(request: Request, job_id: int) -> Response:
    """The job page's body alone (htmx polls it while the job runs: status, log, curves)."""
    try:
        # Without the log: the page keeps its own, which follows by itself.
        return render("job_body.html", _job_context(request, job_id, with_log=False))
    except NoSuchJob as exc:
        return _not_found(request, str(exc))


@router.get("/jobs/{job_id}/log", response_class=HTMLResponse)
def job_log(request: Request, job_id: int, attempt: int = 0, after: str = "") -> Response:
    """What the job's log has after ``after`` (the end of the text the page shows, see
    :func:`_log_query`): 204 when nothing, else the new text and the next poller, so a long
    log costs a poll its new lines only. The whole panel again (htmx retargeted) when the
    page's text cannot be continued: another attempt, a tail moved past it, a job ended."""
    try:
        context = _log_context(request, job_id)
    except NoSuchJob as exc:
        return _not_found(request, str(exc))
    job, log = context["job"], context["log"]
    found = log.rfind(after) if after else -1
    if job.final or job.attempt != attempt or found < 0:
        panel = render("job_log.html", {**context, "log_alone": True})
        panel.headers.update({"HX-Retarget": "#log-panel", "HX-Reswap": "outerHTML"})
        return panel
    fresh = log[found + len(after) :]
    if not fresh:
        return Response(status_code=204)  # htmx leaves the page as it is
    return HTMLResponse(escape(fresh) + Markup(render_text("log_more.html", context)))


def _log_context(request: Request, job_id: int) -> dict[str, Any]:
    job = store_of(request).get(job_id)
    log = _read_log(request, job_id)
    return page_context(
        request,
        "jobs",
        job=job,
        log=log,
        log_truncated=len(log.encode()) >= LOG_TAIL_BYTES,
        log_query=_log_query(job.attempt, log),
        poll="1s" if job.status in ACTIVE else "5s",
    )


def _read_log(request: Request, job_id: int) -> str:
    try:
        return manager_of(request).logs(job_id, tail_bytes=LOG_TAIL_BYTES)
    except (JobError, OSError) as exc:
        return f"(the log cannot be read: {exc})"


def _log_query(attempt: int, log: str) -> str:
    """The log poller's query: the attempt shown and the end of its text (enough characters
    to be found again in the next tail; a log that repeats them may skip lines, never show
    one twice)."""
    return _query([("attempt", str(attempt)), ("after", log[-LOG_ANCHOR_CHARS:])])


@router.post("/jobs/{job_id}/stop")
def job_stop(request: Request, job_id: int) -> Response:
    """The Stop button: the CLI's ``jobs stop``, then back to the job."""
    return _act(request, job_id, "stop")


@router.post("/jobs/{job_id}/retry")
def job_retry(request: Request, job_id: int) -> Response:
    """The Retry button: the CLI's ``jobs retry``, then back to the job."""
    return _act(request, job_id, "retry")


def _act(request: Request, job_id: int, action: str) -> Response:
    manager = manager_of(request)
    try:
        if action == "stop":
            manager.stop(job_id)
        else:
            manager.retry(job_id)
    except NoSuchJob as exc:
        return _not_found(request, str(exc))
    except JobError as exc:
        context = _job_context(request, job_id)
        context["error"] = str(exc)
        return render("job.html", context, status_code=409)
    return RedirectResponse(f"/jobs/{job_id}?done={action}", status_code=303)


@router.get("/submissions/{submission}", response_class=HTMLResponse)
def sweep(request: Request, submission: str) -> Response:
    """A submission's jobs side by side: hyperparameters that vary, final metrics, and the
    objective (``objective``, default: chosen from the metrics) against each hyperparameter."""
    try:
        view = sweep_view(store_of(request), submission, request.query_params.get("objective"))
    except NoSuchJob as exc:
        return _not_found(request, str(exc))
    context = page_context(request, "jobs", **view)
    return render("sweep_results.html" if _partial(request) else "sweep.html", context)


def _not_found(request: Request, message: str) -> Response:
    return render("not_found.html", page_context(request, "jobs", message=message), 404)
