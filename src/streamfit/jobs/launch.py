"""The launch step: New jobs whose time has come -> Launched.

The run is launched first and recorded second. Its name is the attempt's idempotency key, so a
scheduler that dies in between finds the same run again on its next pass instead of starting
a second one, and two schedulers racing for a job start one run (one of them then loses the
guarded update, harmlessly).
"""

from __future__ import annotations

import logging

from streamfit.jobs.backoff import compute_backoff
from streamfit.jobs.context import StepContext
from streamfit.jobs.errors import CapacityError, InvalidJobError, StaleJob, TransientLaunchError
from streamfit.jobs.runs import job_paths, run_request
from streamfit.jobs.status import FailureKind, Status
from streamfit.jobs.store import Change, Job

__all__ = ["launch_step"]

log = logging.getLogger(__name__)


def launch_step(ctx: StepContext, limit: int = 500) -> int:
    """One pass; returns the number of jobs whose status or schedule changed."""
    changed = 0
    now = ctx.clock.now()
    blocked = False  # a long-waiting job did not fit: nothing behind it may overtake it
    for job in ctx.store.due(now, limit):
        if job.stop_requested:
            changed += _apply(
                ctx, Change(job, Status.STOPPED, "stopped before launch", {"ended_at": now})
            )
            continue
        if blocked:
            continue
        try:
            ref = ctx.backend.launch(run_request(job, ctx.home))
        except CapacityError as exc:
            changed += _wait(ctx, job, f"capacity: {exc}")
            blocked = now - job.created_at > ctx.starvation_seconds
            continue
        except TransientLaunchError as exc:
            changed += _wait(ctx, job, f"launch failed, will retry: {exc}")
            continue
        except InvalidJobError as exc:
            changed += _apply(
                ctx,
                Change(
                    job,
                    Status.FAILED,
                    f"final: cannot launch: {exc}",
                    {
                        "failure_kind": FailureKind.INVALID.value,
                        "failure_reason": str(exc),
                        "final": True,
                        "ended_at": now,
                    },
                ),
            )
            continue
        output, checkpoints = job_paths(job, ctx.home)
        changed += _apply(
            ctx,
            Change(
                job,
                Status.LAUNCHED,
                f"run {ref}",
                {
                    "backend": ctx.backend.name,
                    "backend_ref": ref,
                    "launched_at": job.launched_at or now,
                    "output_uri": str(output),
                    "checkpoint_uri": str(checkpoints),
                    "failure_kind": None,
                    "failure_reason": None,
                },
            ),
        )
    return changed


def _wait(ctx: StepContext, job: Job, reason: str) -> int:
    """Leave ``job`` New, due again after a backoff; uses up none of its attempts."""
    waits = int(job.failures.get("capacity_waits", 0)) + 1
    delay = compute_backoff(waits, ctx.capacity_backoff, ctx.capacity_backoff_max, rand=ctx.rand)
    now = ctx.clock.now()
    failures = {**job.failures, "capacity_waits": waits}
    values = {
        "next_attempt_at": now + delay,
        "failures": failures,
        "failure_kind": FailureKind.CAPACITY.value,
        "failure_reason": reason,
    }
    return _apply(ctx, Change(job, Status.NEW, reason, values))


def _apply(ctx: StepContext, change: Change) -> int:
    try:
        ctx.store.transition(change.job, change.to, ctx.clock.now(), change.detail, **change.values)
    except StaleJob:
        log.debug("job %s moved on under another scheduler", change.job.id)
        return 0
    return 1
