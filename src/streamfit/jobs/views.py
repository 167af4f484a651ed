"""JSON views of jobs, for ``jobs list/show --json`` and anything else that reads the store
(a dashboard reads these, never the CLI's text). Values of ``env`` variables whose names look
secret show as ``***``; ``env_from`` shows its references, never the values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from streamfit.jobs.environment import masked_env
from streamfit.jobs.runs import attempt_refs
from streamfit.jobs.status import Status
from streamfit.jobs.store import Event, Job
from streamfit.jobs.versions import published_versions

__all__ = [
    "attempts_of",
    "duration",
    "event_dict",
    "iso",
    "job_detail",
    "job_summary",
    "shown_spec",
]

_ENDS = {Status.COMPLETED.value, Status.FAILED.value, Status.STOPPED.value}


def iso(t: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC.

    >>> iso(1_800_000_000.25)
    '2027-01-15T08:00:00.250+00:00'
    """
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")


def duration(seconds: float | None) -> str:
    """A short human duration.

    >>> duration(0.047), duration(6.37), duration(75), duration(7380), duration(None)
    ('47ms', '6.4s', '1m15s', '2h03m', '-')
    """
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def job_summary(job: Job) -> dict[str, Any]:
    """One job of ``jobs list --json``."""
    return {
        "id": job.id,
        "name": job.name,
        "owner": job.owner,
        "status": job.status.value,
        "final": job.final,
        "attempt": job.attempt,
        "failure_kind": job.failure_kind,
        "created_at": iso(job.created_at),
        "launched_at": iso(job.launched_at),
        "started_at": iso(job.started_at),
        "ended_at": iso(job.ended_at),
    }


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "from": event.from_status,
        "to": event.to_status,
        "at": iso(event.at),
        "detail": event.detail,
        "attempt": event.attempt,
        "failure_kind": event.failure_kind,
    }


def attempts_of(job: Job, history: Sequence[Event]) -> list[dict[str, Any]]:
    """Each attempt's run (None: never launched), times and outcome, from the job's events."""
    attempts: dict[int, dict[str, Any]] = {}
    refs = attempt_refs(history)
    for event in history:
        if event.attempt not in attempts:
            attempts[event.attempt] = {
                "attempt": event.attempt,
                "run": refs.get(event.attempt),
                "status": event.to_status,
                "launched_at": None,
                "started_at": None,
                "ended_at": None,
                "failure_kind": None,
                "detail": None,
            }
        a = attempts[event.attempt]
        a["status"] = event.to_status
        if event.to_status == Status.LAUNCHED.value and a["launched_at"] is None:
            a["launched_at"] = iso(event.at)
        elif event.to_status == Status.IN_PROGRESS.value:
            a["started_at"] = iso(event.at)
        elif event.to_status in _ENDS and event.from_status not in _ENDS:
            a.update(ended_at=iso(event.at), failure_kind=event.failure_kind, detail=event.detail)
    return list(attempts.values())


def shown_spec(job: Job) -> dict[str, Any]:
    """The job's spec fit to show: secret-looking ``env`` values masked.

    >>> from streamfit.jobs.store import Store
    >>> from streamfit.jobs.spec import JobSpec
    >>> store = Store("sqlite://")
    >>> spec = JobSpec(name="x", owner="a@example.com", command=["true"],
    ...                env={"API_TOKEN": "abc", "LR": "0.1"}, env_from={"PW": "secret:db"})
    >>> shown = shown_spec(store.get(store.submit([spec], now=0.0).job_ids[0]))
    >>> shown["env"], shown["env_from"]
    ({'API_TOKEN': '***', 'LR': '0.1'}, {'PW': 'secret:db'})
    """
    spec = dict(job.spec)
    spec["env"] = masked_env(spec.get("env") or {})
    return spec


def job_detail(job: Job, history: Sequence[Event]) -> dict[str, Any]:
    """``jobs show --json``: the summary, the spec, the attempts, the whole history, and the
    model versions it published (continuous training), newest first."""
    return {
        **job_summary(job),
        "submission": job.submission,
        "tags": job.tags,
        "priority": job.priority,
        "share": job.share,
        "preemptible": bool(job.spec.get("preemptible")),
        "continuous": bool(job.spec.get("continuous")),
        "max_attempts": job.max_attempts,
        "failures": job.failures.to_json(),
        "failure_reason": job.failure_reason,
        "stop_requested": job.stop_requested,
        "next_attempt_at": iso(job.next_attempt_at) if job.status == Status.NEW else None,
        "backend": job.backend,
        "backend_ref": job.backend_ref,
        "output_uri": job.output_uri,
        "checkpoint_uri": job.checkpoint_uri,
        "metrics": job.metrics,
        "spec": shown_spec(job),
        "attempts": attempts_of(job, history),
        "history": [event_dict(e) for e in history],
        "versions": published_versions(job.output_uri),
    }
