"""The launch step: New jobs whose time has come -> Launched, by priority, then fair share
(:mod:`~streamfit.jobs.shares`: the share that used least for its weight first), then age.

Runs are launched first and recorded second, a batch at a time. A run's name is its
attempt's idempotency key, so a scheduler that dies in between finds the same runs again on
its next pass instead of starting second ones, and two schedulers racing for a job start one
run (one of them then loses the guarded update, harmlessly).

Jobs that do not fit the capacity the backend reports free are passed over without asking
the backend; they wait in the queue (their first wait is recorded once, as a capacity wait,
which uses up no attempts). A job that has waited longer than ``starvation_seconds`` stops
smaller jobs behind it from overtaking it. A share at one of its caps launches nothing more
until its jobs end (its jobs wait, as for capacity); a share under its caps takes whatever
capacity the others leave idle, and gives it back as its jobs end, to whichever share is then
furthest below its portion. A job that does not fit may stop preemptible jobs of lower
priority (:mod:`~streamfit.jobs.preempt`). Caps are checked against the jobs recorded when the
pass began: schedulers side by side, launching for one share at the same instant, may pass its
cap by a pass's launches (nothing locks a share across schedulers).
"""

from __future__ import annotations

import logging

from streamfit.jobs.backoff import compute_backoff
from streamfit.jobs.context import StepContext
from streamfit.jobs.errors import CapacityError, InvalidJobError, TransientLaunchError
from streamfit.jobs.preempt import Preemption
from streamfit.jobs.runs import job_paths, launched_detail, run_request
from streamfit.jobs.shares import ShareBook, fair_order, run_cost
from streamfit.jobs.spec import Resources
from streamfit.jobs.status import FailureKind, Status
from streamfit.jobs.store import Change, Claim, Job

__all__ = ["launch_step"]

log = logging.getLogger(__name__)

#: Launches recorded per transaction: bounds what a crash makes the next pass find again.
_BATCH = 64


def launch_step(ctx: StepContext, limit: int = 64) -> int:
    """One pass; returns the number of status changes (and first capacity waits) written."""
    now = ctx.clock.now()
    fair = ctx.fair_share
    total = ctx.backend.capacity
    ctx.store.charge_usage(now, fair.half_life_seconds, total)
    free = ctx.backend.free()
    changes: list[Change] = []
    written = 0
    # With every CPU taken no job can fit (each asks for some): look at the heads of the
    # shares' queues only, to record their waits (and make room for a job of higher priority),
    # instead of reading thousands of waiting jobs on every pass.
    full = free is not None and free.cpus_exhausted
    # On PostgreSQL the claimed jobs stay locked until the block ends: a scheduler beside
    # this one takes the next jobs of the queue instead of launching these a second time.
    with ctx.store.claim_queue(now, 8 if full else limit) as claim:
        book = ShareBook.of(fair, ctx.store.held_by_share())
        usage = ctx.store.share_usage(now, fair.half_life_seconds)
        weights = {j.share: fair.limits(j.share).weight for j in claim.items}
        order = fair_order(claim.items, usage, weights, lambda j: run_cost(_wants(j), total))
        preemption = Preemption(ctx, now)
        for job in order:
            if job.stop_requested:
                changes.append(
                    Change(job, Status.STOPPED, "stopped before launch", {"ended_at": now})
                )
                continue
            want = _wants(job)
            capped = book.refusal(job.share, want)
            if capped is not None:  # its share's jobs must end first: others go ahead
                if not _waits_for(job, _CAPPED):
                    changes.append(_capacity_wait(job, _CAPPED + capped, now, now))
                continue
            never_fits = total is not None and not want.fits_within(total)  # launch says why
            if free is not None and not want.fits_within(free) and not never_fits:
                if not _waits_for(job, _ROOM):
                    reason = f"{_ROOM}needs {want}, free {free}"
                    changes.append(_capacity_wait(job, reason, now, next_attempt_at=now))
                if preemption.make_room(job, want, free):
                    break  # room is on its way for it: nothing behind may take it
                if now - job.created_at > ctx.starvation_seconds:
                    break  # nothing behind a starving job may overtake it
                continue
            change = _launch(ctx, job, now)
            changes.append(change)
            if change.to == Status.LAUNCHED:
                book.take(job.share, want)
                if free is not None:
                    free = free - want
                    if free.cpus_exhausted:
                        break  # every CPU taken: no job behind can fit
            if len(changes) >= _BATCH:
                written += _record(claim, changes, now)
                changes = []
        written += _record(claim, changes, now)
    return written


def _launch(ctx: StepContext, job: Job, now: float) -> Change:
    try:
        # (a reference env_from cannot resolve is an InvalidJobError: the job fails as invalid)
        ref = ctx.backend.launch(run_request(job, ctx.home, ctx.store.id, ctx.secrets))
    except CapacityError as exc:  # another scheduler took the room first
        delay = compute_backoff(1, ctx.capacity_backoff, ctx.capacity_backoff_max, rand=ctx.rand)
        return _capacity_wait(job, f"capacity: {exc}", now, next_attempt_at=now + delay)
    except TransientLaunchError as exc:
        failures = job.failures.launch_failed()
        delay = compute_backoff(
            failures.launch_errors, ctx.capacity_backoff, ctx.capacity_backoff_max, rand=ctx.rand
        )
        values = {
            "next_attempt_at": now + delay,
            "failures": failures,
            "failure_reason": str(exc),
        }
        return Change(job, Status.NEW, f"launch failed, will retry: {exc}", values)
    except InvalidJobError as exc:
        values = {
            "failure_kind": FailureKind.INVALID.value,
            "failure_reason": str(exc),
            "final": True,
            "ended_at": now,
        }
        return Change(job, Status.FAILED, f"final: cannot launch: {exc}", values)
    output, checkpoints = job_paths(job, ctx.home)
    values = {
        "backend": ctx.backend.name,
        "backend_ref": ref,
        "launched_at": job.launched_at or now,
        "charged_at": now,  # its share pays for its run from now (store_shares)
        "output_uri": str(output),
        "checkpoint_uri": str(checkpoints),
        "failure_kind": None,
        "failure_reason": None,
    }
    return Change(job, Status.LAUNCHED, launched_detail(ref), values)


#: Why a job waits, as its first wait for each reason records it (once: not every pass).
_ROOM, _CAPPED = "capacity: ", "capacity: its share's cap: "


def _waits_for(job: Job, why: str) -> bool:
    """Whether ``job``'s wait for this reason is recorded already."""
    reason = job.failure_reason or ""
    return (
        job.failure_kind == FailureKind.CAPACITY.value
        and reason.startswith(why)
        and (why == _CAPPED or not reason.startswith(_CAPPED))
    )


def _wants(job: Job) -> Resources:
    return Resources.model_validate(job.spec["resources"])


def _capacity_wait(job: Job, reason: str, now: float, next_attempt_at: float) -> Change:
    """Leave ``job`` New, recording why it waits; uses up none of its attempts."""
    values = {
        "next_attempt_at": next_attempt_at,
        "failure_kind": FailureKind.CAPACITY.value,
        "failure_reason": reason,
    }
    return Change(job, Status.NEW, reason, values)


def _record(claim: Claim[Job], changes: list[Change], now: float) -> int:
    if not changes:
        return 0
    done = claim.apply(changes, now)
    lost = sum(1 for d in done if d is None)
    if lost:
        log.debug("%d jobs moved on under another scheduler", lost)
    return len(done) - lost
