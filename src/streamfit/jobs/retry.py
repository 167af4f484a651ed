"""The retry step: Failed jobs -> New again (attempt + 1), or final.

A job is retried while the budget for its failure kind lasts (``retry.algorithm``,
``retry.infrastructure``; ``invalid`` never), unless the same error has repeated
``retry.crash_loop`` times in a row, or its owner asked it to stop. A retried built-in job
resumes from its checkpoint folder, which belongs to the job. A continuous job whose failure
followed progress restarts at once, spending nothing (:mod:`~streamfit.jobs.continuous`).
"""

from __future__ import annotations

from streamfit.jobs.backoff import compute_backoff
from streamfit.jobs.context import StepContext
from streamfit.jobs.continuous import crash_loop_reason, restarts
from streamfit.jobs.preempt import requeue
from streamfit.jobs.status import FailureKind, Status
from streamfit.jobs.store import Change, Job

__all__ = ["retry_decision", "retry_step"]


def retry_decision(job: Job) -> tuple[bool, str]:
    """Whether to retry a Failed job, and why (or why not)."""
    spec = job.spec_model()
    kind = job.failure_kind or FailureKind.ALGORITHM.value
    used = job.failures.count(kind)
    if job.stop_requested:
        return False, "its owner asked it to stop"
    if kind == FailureKind.INVALID.value:
        return False, "invalid: not retried"
    if restarts(job):
        return True, f"continuous: restarted from its checkpoint after {kind} failure"
    if (loop := crash_loop_reason(job, spec.retry.crash_loop)) is not None:
        return False, loop
    budget = getattr(spec.retry, kind, 0)
    if used > budget:
        return False, f"{kind} failures: {used}, budget {budget} retries"
    streak = job.failures.streak
    if streak >= spec.retry.crash_loop:
        return False, f"crash loop: the same error {streak} times in a row"
    return True, f"retry {used} of {budget} after {kind} failure"


def retry_step(ctx: StepContext, limit: int = 500) -> int:
    """One pass; returns the number of jobs retried or made final."""
    now = ctx.clock.now()
    changes = []
    # Every job read is changed (retried or made final), so a pass may take a page: the
    # scheduler runs the step again at once while it has work. On PostgreSQL the page stays
    # locked until its changes are written, and schedulers beside this one take other pages.
    with ctx.store.claim_jobs([Status.FAILED], final=False, limit=limit) as claim:
        for job in claim.items:
            retry, why = retry_decision(job)
            if retry and restarts(job):
                changes.append(requeue(job, now, f"{why}, no attempt spent"))
            elif retry:
                spec = job.spec_model()
                used = job.failures.count(job.failure_kind or "") or 1
                delay = compute_backoff(
                    used, spec.retry.backoff_seconds, spec.retry.max_backoff_seconds, rand=ctx.rand
                )
                values = {
                    "attempt": job.attempt + 1,
                    "next_attempt_at": now + delay,
                    "backend_ref": None,
                    "started_at": None,
                    "ended_at": None,
                }
                changes.append(Change(job, Status.NEW, why, values))
            else:
                changes.append(Change(job, Status.FAILED, f"final: {why}", {"final": True}))
        done = claim.apply(changes, now)
    return sum(1 for d in done if d is not None)
