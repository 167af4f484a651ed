"""The JSON API under ``/api``: the same store, checks and manager functions as the CLI's
``streamfit jobs`` commands, so the API and the CLI never disagree.

=========================================  ===================================================
``GET /api/jobs``                          filters, sort, keyset pages (:mod:`.queries`)
``GET /api/jobs/{id}``                     spec, attempts, history, metrics (``jobs show``)
``GET /api/jobs/{id}/logs``                the tail; ``?follow=1``: server-sent events
``GET /api/jobs/{id}/curves``              the training curve (:mod:`.curves`)
``POST /api/jobs``                         submit specs, all or nothing (``jobs submit``)
``POST /api/jobs/{id}/stop`` and ``retry``  as ``jobs stop`` and ``jobs retry``
``GET /api/stats``                         as ``jobs stats``
=========================================  ===================================================
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from streamfit.jobs.errors import SpecError
from streamfit.jobs.manager import JobManager
from streamfit.jobs.records import Job
from streamfit.jobs.spec import JobSpec, parse_specs
from streamfit.jobs.stats import GroupStats
from streamfit.jobs.views import job_summary
from streamfit.server.curves import read_curves
from streamfit.server.errors import ApiError
from streamfit.server.queries import MAX_LIMIT, JobFilter, job_page, page_jobs, parse_time
from streamfit.server.state import manager_of, store_of
from streamfit.server.stats import stats_of

__all__ = [
    "FOLLOW_POLL_SECONDS",
    "Attempt",
    "Curve",
    "GroupStatsModel",
    "HistoryEvent",
    "JobDetail",
    "JobList",
    "JobSummary",
    "LogTail",
    "Submitted",
    "new_text",
    "router",
    "summary",
]

router = APIRouter(prefix="/api", tags=["jobs"])

#: How often a followed log is read again.
FOLLOW_POLL_SECONDS = 0.5
#: The most bytes of a log read for a tail (a line longer than this is cut).
_TAIL_BYTES = 256 * 1024
#: The most jobs one submission holds over the API.
MAX_SUBMIT = 10_000
_MAX_ID = 2**62  # past SQLite's integers: no job has such an id

JobId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The job's id.")]


# -- response models ------------------------------------------------------------------------------


class JobSummary(BaseModel):
    """One job of a list (``jobs list --json``), with its submission and tags."""

    id: int
    name: str
    owner: str
    status: str
    final: bool
    attempt: int
    failure_kind: str | None
    created_at: str | None
    launched_at: str | None
    started_at: str | None
    ended_at: str | None
    submission: str
    tags: dict[str, str]


class JobList(BaseModel):
    jobs: list[JobSummary]
    #: Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None
    #: Jobs per status under the filter, its status part left out.
    counts: dict[str, int]


class Attempt(BaseModel):
    attempt: int
    run: str | None
    status: str
    launched_at: str | None
    started_at: str | None
    ended_at: str | None
    failure_kind: str | None
    detail: str | None


class HistoryEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_status: str | None = Field(alias="from")
    to: str
    at: str | None
    detail: str | None
    attempt: int
    failure_kind: str | None


class JobDetail(JobSummary):
    """A job in full (``jobs show --json``): secret-looking ``env`` values show as ``***``."""

    # Whatever else ``jobs show --json`` comes to say is said here too.
    model_config = ConfigDict(extra="allow")

    priority: int
    share: str
    preemptible: bool
    max_attempts: int
    failures: dict[str, Any]
    failure_reason: str | None
    stop_requested: bool
    next_attempt_at: str | None
    backend: str | None
    backend_ref: str | None
    output_uri: str | None
    checkpoint_uri: str | None
    metrics: dict[str, Any] | None
    spec: dict[str, Any]
    attempts: list[Attempt]
    history: list[HistoryEvent]


class LogTail(BaseModel):
    job_id: int
    attempt: int
    #: The last lines of the attempt's output (stdout and stderr), secrets masked.
    lines: list[str]


class CurvePoint(BaseModel):
    model_config = ConfigDict(extra="allow")

    rows: int | None = None
    epoch: int | None = None
    loss: float | None = None
    seconds: float | None = None
    rows_per_second: float | None = None


class Curve(BaseModel):
    job_id: int
    points: list[CurvePoint]


class PercentilesModel(BaseModel):
    """Seconds; null when no job of the group has the measure yet."""

    n: int
    p50: float | None
    p90: float | None
    p99: float | None


class GroupStatsModel(BaseModel):
    """One group of ``jobs stats --json`` (:class:`~streamfit.jobs.stats.GroupStats`)."""

    group: str | None
    jobs: int
    completed: int
    failed: int
    stopped: int
    in_flight: int
    success_rate: float | None
    failures: dict[str, int]
    retries: dict[str, int]
    wait_to_launch: PercentilesModel
    run_time: PercentilesModel


class Submitted(BaseModel):
    submission: str
    jobs: list[int]


class SubmitRequest(BaseModel):
    """Job specs, as ``jobs submit`` reads them from a file: checked all before any is stored."""

    jobs: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_SUBMIT)


def summary(job: Job) -> dict[str, Any]:
    """A job as :class:`JobSummary` shows it."""
    return {**job_summary(job), "submission": job.submission, "tags": job.tags}


# -- reading --------------------------------------------------------------------------------------


@router.get("/jobs", response_model=JobList)
def list_jobs(
    request: Request,
    status: Annotated[list[str], Query(description="Status (repeat, or comma-separated).")] = [],  # noqa: B006
    owner: str | None = None,
    tag: Annotated[list[str], Query(description="KEY=VALUE (repeat for several).")] = [],  # noqa: B006
    name: Annotated[str | None, Query(description="Part of the name.")] = None,
    created_after: Annotated[str | None, Query(description="Epoch seconds or ISO.")] = None,
    created_before: Annotated[str | None, Query(description="Epoch seconds or ISO.")] = None,
    submission: str | None = None,
    sort: Annotated[str, Query(description="created, name, status, owner or id; -: descending")] = (
        "-created"
    ),
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Jobs, filtered and sorted on the server, a page at a time."""
    filt = JobFilter.from_query(request.query_params.multi_items())
    page = page_jobs(store_of(request), filt, sort=sort, limit=limit, cursor=cursor)
    return {
        "jobs": [summary(j) for j in page.jobs],
        "next_cursor": page.next_cursor,
        "counts": page.counts,
    }


@router.get("/jobs/{job_id}", response_model=JobDetail)
def get_job(request: Request, job_id: JobId) -> dict[str, Any]:
    """A job in full: spec, attempts, history, metrics."""
    detail = job_page(store_of(request), job_id)
    detail["tags"] = detail.get("tags") or {}
    return detail


@router.get(
    "/jobs/{job_id}/logs",
    response_model=LogTail,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def get_logs(
    request: Request,
    job_id: JobId,
    tail: Annotated[int, Query(ge=1, le=10_000, description="How many lines.")] = 200,
    attempt: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    follow: Annotated[bool, Query(description="Stream new lines (text/event-stream).")] = False,
) -> Any:
    """The last lines of a job's output; ``follow``: then its new lines as server-sent events
    (``event: line``), until the job ends (``event: end``, its status as the data)."""
    manager = manager_of(request)
    job = manager.store.get(job_id)
    number = attempt or job.attempt
    text = manager.logs(job_id, number, _TAIL_BYTES)
    lines = text.splitlines()[-tail:]
    if not follow:
        return {"job_id": job_id, "attempt": number, "lines": lines}
    return StreamingResponse(
        _follow(request, manager, job_id, number, lines, text),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def new_text(before: str, now: str) -> str:
    """What a log's tail ``now`` holds past the tail read ``before`` (both its last bytes).

    >>> new_text("a\\nb\\n", "a\\nb\\nc\\n"), new_text("0123456789", "456789abc")
    ('c\\n', 'abc')
    """
    if now.startswith(before):
        return now[len(before) :]
    # The tail moved on: what follows the end of the text seen before (a log that repeats
    # itself over the whole anchor may lose a line here, never show one twice).
    anchor = before[-min(4096, max(1, len(before) // 2)) :]
    found = now.rfind(anchor) if anchor else -1
    return now[found + len(anchor) :] if found >= 0 else now


def _sse(event: str, data: str) -> str:
    return f"event: {event}\n" + "".join(f"data: {part}\n" for part in data.split("\n")) + "\n"


async def _follow(
    request: Request, manager: JobManager, job_id: int, attempt: int, lines: list[str], seen: str
) -> AsyncIterator[str]:
    for line in lines:
        yield _sse("line", line)
    partial = ""  # a last line not yet ended: sent when it is
    if seen and not seen.endswith("\n") and lines:
        partial = lines[-1]
    quiet = 0.0
    while not await request.is_disconnected():
        job = await run_in_threadpool(manager.store.get, job_id)
        if job.attempt != attempt:  # a retry: its own run, its own log
            attempt, seen, partial = job.attempt, "", ""
            yield _sse("attempt", str(attempt))
        now = await run_in_threadpool(manager.logs, job_id, attempt, _TAIL_BYTES)
        fresh = new_text(seen, now)
        seen = now
        if fresh:
            quiet = 0.0
            pieces = fresh.split("\n")
            if partial:
                pieces[0] = partial + pieces[0]
            partial = pieces.pop()
            for line in pieces:
                yield _sse("line", line)
        if job.final:
            if partial:
                yield _sse("line", partial)
            yield _sse("end", job.status.value)
            return
        quiet += FOLLOW_POLL_SECONDS
        if quiet >= 15:  # a comment keeps proxies from closing an idle stream
            quiet = 0.0
            yield ": still running\n\n"
        await asyncio.sleep(FOLLOW_POLL_SECONDS)


@router.get("/jobs/{job_id}/curves", response_model=Curve)
def get_curves(request: Request, job_id: JobId) -> dict[str, Any]:
    """The job's training curve (progressive loss as it trained); empty for a command job."""
    job = store_of(request).get(job_id)
    return {"job_id": job_id, "points": read_curves(job)}


@router.get("/stats", response_model=list[GroupStatsModel])
def get_stats(
    request: Request,
    by: Annotated[str, Query(description="day, owner, or tag:NAME", max_length=300)] = "day",
    since: Annotated[
        str | None, Query(description="Submitted since: epoch seconds or ISO date/time.")
    ] = None,
) -> list[GroupStats]:
    """How jobs fare, per day, owner or tag value: the figures of ``jobs stats --json``, at
    most 30 seconds old (the server computes them again at most that often)."""
    if by == "tag":
        raise ApiError("by: name the tag, as tag:NAME")
    start = parse_time(since, "since") if since else None
    return stats_of(request, by=by, since=start)


# -- changing -------------------------------------------------------------------------------------


@router.post("/jobs", response_model=Submitted, status_code=201)
def submit_jobs(
    request: Request, body: Annotated[SubmitRequest, Body(embed=False)]
) -> dict[str, Any]:
    """Submit job specs as one submission, checked as ``jobs submit`` checks a file: one bad
    spec and nothing is stored (422, naming the job and the field). Over the API a job's
    ``workdir`` must be absolute (there is no spec file for a relative one to start from)."""
    specs = parse_specs(body.jobs, "request")
    for index, spec in enumerate(specs):
        _check_workdir(spec, index)
    submission = manager_of(request).submit(specs)
    return {"submission": submission.id, "jobs": submission.job_ids}


def _check_workdir(spec: JobSpec, index: int) -> None:
    if spec.workdir is not None and not os.path.isabs(spec.workdir):
        raise SpecError(
            f"request, job {index + 1} ({spec.name!r}): workdir: {json.dumps(spec.workdir)[:80]} "
            "is relative: over the API give an absolute path"
        )


@router.post("/jobs/{job_id}/stop", response_model=JobSummary)
def stop_job(request: Request, job_id: JobId) -> dict[str, Any]:
    """Stop a job: a waiting one at once, a running one by SIGTERM (it ends Stopped)."""
    return summary(manager_of(request).stop(job_id))


@router.post("/jobs/{job_id}/retry", response_model=JobSummary)
def retry_job(request: Request, job_id: JobId) -> dict[str, Any]:
    """Run a job that ended Failed or Stopped again, as its next attempt."""
    return summary(manager_of(request).retry(job_id))
