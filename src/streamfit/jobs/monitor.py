"""The monitor step: Launched/InProgress jobs -> InProgress, Completed, Failed or Stopped.

Also enforces ``max_runtime_seconds`` (stop, then Failed) and passes owners' stop requests on
to the backend.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from streamfit.jobs.backends.base import RunPhase, RunState
from streamfit.jobs.context import StepContext
from streamfit.jobs.continuous import failures_after, is_continuous
from streamfit.jobs.environment import masked_tail, secret_values
from streamfit.jobs.preempt import is_preempted, requeue
from streamfit.jobs.runs import classify, error_signature
from streamfit.jobs.status import ACTIVE, Status
from streamfit.jobs.store import Change, Claim, Job

__all__ = ["monitor_step"]

log = logging.getLogger(__name__)
_LOG_TAIL = 4096


def monitor_step(ctx: StepContext, page: int = 256) -> int:
    """One pass over every active job, a page at a time; returns the status changes written.

    Each page's changes are written in one transaction. On PostgreSQL the page stays locked
    while its runs are polled, so schedulers beside this one poll other pages.
    """
    written, after = 0, 0
    while True:
        with ctx.store.claim_jobs(sorted(ACTIVE), after=after, limit=page) as claim:
            written += _monitor(ctx, claim)
        if len(claim.items) < page:
            return written
        after = claim.items[-1].id


def _monitor(ctx: StepContext, claim: Claim[Job]) -> int:
    changes: list[Change] = []
    now = ctx.clock.now()
    for job in claim.items:
        assert job.backend_ref is not None
        state = ctx.backend.poll(job.backend_ref)
        if state.phase == RunPhase.PENDING:
            # Queued by the backend (a cluster waiting for room): not started, so its run
            # time has not begun and it stays Launched; an owner's stop still reaches it.
            if job.stop_requested and not state.stop_requested:
                ctx.backend.stop(job.backend_ref)
            continue
        if state.phase == RunPhase.RUNNING:
            started = job.started_at or state.started_at or now
            if started and now - started > job.spec["max_runtime_seconds"] and not state.timed_out:
                ctx.backend.stop(job.backend_ref, timed_out=True)
            elif (job.stop_requested or is_preempted(job)) and not state.stop_requested:
                ctx.backend.stop(job.backend_ref)  # (preempted: a scheduler died before it)
            if job.status == Status.LAUNCHED:
                changes.append(Change(job, Status.IN_PROGRESS, "running", {"started_at": started}))
            continue
        changes.append(_ended(ctx, job, state, now))
    done = claim.apply(changes, now)
    return sum(1 for d in done if d is not None)


def _ended(ctx: StepContext, job: Job, state: RunState, now: float) -> Change:
    assert job.backend_ref is not None
    tail = ""
    if state.phase == RunPhase.EXITED:
        # Masked: the tail becomes the failure reason, in the store and in notifications.
        ref, spec = job.backend_ref, job.spec_model()
        hidden = secret_values(spec.env, spec.env_from, ctx.secrets, ctx.hidden)
        tail = masked_tail(lambda n: ctx.backend.logs(ref, n), _LOG_TAIL, hidden)
    outcome = classify(state, builtin=job.spec.get("algorithm") is not None, log_tail=tail)
    if outcome.status == Status.STOPPED and is_preempted(job):
        return requeue(job, now)
    values: dict[str, Any] = {
        "ended_at": state.ended_at or now,
        "started_at": job.started_at or state.started_at,
    }
    if outcome.status == Status.COMPLETED:
        values["metrics"] = _metrics(job)
        values.update(failure_kind=None, failure_reason=None)
        return Change(job, Status.COMPLETED, "exit status 0", values)
    if outcome.status == Status.STOPPED:
        return Change(job, Status.STOPPED, outcome.reason, values)
    assert outcome.kind is not None
    kind = outcome.kind.value
    reason = outcome.reason
    if tail:
        reason += "\n--- last lines of the log ---\n" + "\n".join(tail.splitlines()[-20:])
    signature = error_signature(kind, outcome.reason)
    if is_continuous(job):
        failures = failures_after(job, kind, signature)
    else:
        failures = job.failures.failed(kind, signature)
    values.update(failure_kind=kind, failure_reason=reason, failures=failures)
    return Change(job, Status.FAILED, f"{kind}: {outcome.reason}", values)


def _metrics(job: Job) -> dict[str, Any] | None:
    if job.output_uri is None:
        return None
    path = Path(job.output_uri) / "metrics.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    if job.spec.get("sweep") is not None:  # each model of the run's sweep (train --sweep)
        try:
            table = json.loads((path.parent / "sweep.json").read_text())
        except (OSError, ValueError):
            table = None
        if isinstance(table, list):
            doc["sweep"] = table
    return doc
