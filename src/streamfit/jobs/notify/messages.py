"""What the messages say: one job's terminal event, or one digest for a whole submission.

Every text a job brought (its name, owner, metrics' names, failure reason) goes through
:func:`~streamfit.text.printable`: a subject is one line whatever a name holds (no header
injection), and neither mail nor console gets raw escape sequences. Webhook payloads keep the
raw values: JSON carries them safely.

>>> attempts(1), attempts(3), summary_counts({"completed": 412, "failed": 3, "stopped": 1}, [3])
('1 attempt', '3 attempts', '412 completed, 3 failed after 3 attempts, 1 stopped')
>>> metrics_line({"train:objective_loss": 0.3, "validation:roc_auc_score": 0.93124})
'validation:roc_auc_score 0.9312'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamfit.jobs.notify.base import truncate
from streamfit.jobs.status import Status
from streamfit.jobs.store import Event, Job
from streamfit.text import printable

__all__ = [
    "Content",
    "attempts",
    "digest_content",
    "job_content",
    "metrics_line",
    "summary_counts",
]

_SUBJECT = 200  # characters
_REASON = 3000  # characters of a failure's reason (with the log's last lines) in a message
_SHORT = 120  # characters of a reason in a digest's list
_LISTED = 50  # failures listed in a digest


@dataclass(frozen=True)
class Content:
    subject: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)


def attempts(n: int) -> str:
    return f"{n} attempt" + ("" if n == 1 else "s")


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def metrics_line(metrics: Mapping[str, Any] | None, most: int = 3) -> str:
    """The headline metrics: validation's, else test's, else training's."""
    if not metrics:
        return ""
    for prefix in ("validation:", "test:", "train:"):
        names = sorted(k for k in metrics if k.startswith(prefix) and "per_second" not in k)
        if names:
            break
    else:
        names = sorted(metrics)
    return ", ".join(f"{printable(k)} {printable(_number(metrics[k]))}" for k in names[:most])


def _first_line(text: str | None) -> str:
    line = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
    return printable(line)


def _tail(text: str) -> str:
    """The end of a long reason: the log's last lines matter most."""
    return printable(text if len(text) <= _REASON else "..." + text[-_REASON:], lines=True)


def _name(job: Job) -> str:
    return f"job {job.id} '{printable(job.name)}'"


def job_content(job: Job, event: Event | None = None) -> Content:
    """A job's terminal event (``event``; else the job as it is now).

    The job's columns describe its latest attempt: they are used only if that is the attempt
    the event ended (a retry asked for since has its own reason, times and metrics)."""
    status = Status(event.to_status) if event is not None else job.status
    attempt = event.attempt if event is not None else job.attempt
    detail = event.detail if event is not None else None
    current = attempt == job.attempt
    failed, completed = status == Status.FAILED, status == Status.COMPLETED
    kind = (
        ((event.failure_kind if event is not None else None) or job.failure_kind)
        if failed
        else None
    )
    reason = job.failure_reason if failed and current else None
    metrics = job.metrics if completed and current else None

    headline = f"{_name(job)} {status.value}"
    headline += f" ({kind or 'unknown'})" if failed else ""
    headline += f" after {attempts(attempt)}"
    why = metrics_line(metrics) if completed else _first_line(reason or detail)
    subject = truncate(printable(f"{headline}: {why}" if why else headline), _SUBJECT)

    lines = [subject, "", f"owner:      {printable(job.owner)}", f"submission: {job.submission}"]
    if current and job.started_at is not None and job.ended_at is not None:
        lines.append(f"ran for:    {job.ended_at - job.started_at:.0f} s")
    if metrics:
        lines += ["metrics:"]
        lines += [f"  {printable(k)} {printable(_number(v))}" for k, v in sorted(metrics.items())]
    if failed:
        lines.append(f"failure:    {printable(kind or 'unknown')}")
        if detail:
            lines.append(f"no retry:   {printable(detail.removeprefix('final: '))}")
        lines += ["reason:", _tail(reason or "(none recorded)")]
    elif detail and not completed:
        lines.append(f"why:        {printable(detail)}")
    lines += ["", f"streamfit jobs show {job.id}    streamfit jobs logs {job.id}"]
    payload = {
        "kind": "job",
        "job_id": job.id,
        "name": job.name,
        "owner": job.owner,
        "submission": job.submission,
        "status": status.value,
        "attempt": attempt,
        "failure_kind": kind,
        "failure_reason": truncate(reason, 1000) if reason else None,
        "metrics": metrics,
    }
    return Content(subject, "\n".join(lines) + "\n", payload)


def summary_counts(counts: Mapping[str, int], failed_attempts: Sequence[int]) -> str:
    failed = f"{counts.get('failed', 0)} failed"
    if failed_attempts:
        low, high = min(failed_attempts), max(failed_attempts)
        failed += f" after {attempts(high)}" if low == high else f" after {low}-{high} attempts"
    parts = [f"{counts.get('completed', 0)} completed", failed]
    if counts.get("stopped"):
        parts.append(f"{counts['stopped']} stopped")
    return ", ".join(parts)


def digest_content(submission: str, jobs: Sequence[Job]) -> Content:
    """One message for a whole submission, once every job in it is terminal."""
    counts = {s.value.lower(): 0 for s in (Status.COMPLETED, Status.FAILED, Status.STOPPED)}
    for job in jobs:
        counts[job.status.value.lower()] = counts.get(job.status.value.lower(), 0) + 1
    failures = [j for j in jobs if j.status == Status.FAILED]
    summary = summary_counts(counts, [j.attempt for j in failures])
    subject = truncate(
        printable(f"submission {submission} ({len(jobs)} jobs): {summary}"), _SUBJECT
    )
    lines = [subject]
    listed = []
    if failures:
        lines += ["", "failures:"]
    for job in failures[:_LISTED]:
        short = truncate(_first_line(job.failure_reason), _SHORT)
        lines.append(f"  {_name(job)} {printable(job.failure_kind or 'unknown')}: {short}")
        listed.append(
            {
                "job_id": job.id,
                "name": job.name,
                "attempt": job.attempt,
                "failure_kind": job.failure_kind,
                "failure_reason": short,
            }
        )
    if len(failures) > _LISTED:
        lines.append(f"  ... and {len(failures) - _LISTED} more")
    payload = {
        "kind": "digest",
        "submission": submission,
        "n_jobs": len(jobs),
        "counts": counts,
        "failures": listed,
    }
    return Content(subject, "\n".join(lines) + "\n", payload)
