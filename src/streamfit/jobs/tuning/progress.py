"""What both kinds of tuning pass share: a trial's objective, submitting a trial's job, and
recording a pass's progress (or the tuning job's end, with its digest's notification rows)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from streamfit.jobs.context import StepContext
from streamfit.jobs.records import Job
from streamfit.jobs.status import Status
from streamfit.jobs.tuning.records import TuningJob, TuningStatus
from streamfit.jobs.tuning.spec import Objective, TuningSpec
from streamfit.jobs.tuning.store import Tunings

__all__ = ["Best", "objective_value", "record_progress", "submit_trial"]


def objective_value(job: Job, objective: Objective) -> float | None:
    """The trial's objective: its job's final metric, if it completed and recorded one."""
    if job.status != Status.COMPLETED or not job.metrics:
        return None
    value = job.metrics.get(objective.metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def submit_trial(
    ctx: StepContext,
    tunings: Tunings,
    tuning: TuningJob,
    spec: TuningSpec,
    number: int,
    params: dict[str, Any],
    *,
    recover: bool = False,
    rung: int = 0,
    due_in: float = 0.0,
) -> Job:
    """The job of trial ``number``, submitted and linked. ``recover``: a pass that died after
    asking for it may have submitted its job without linking it: that job, if there is one,
    is linked instead of a second one (found by its tags: a scan, so only then)."""
    tags = {"tuning": str(tuning.id), "trial": str(number)}
    if rung:
        tags["rung"] = str(rung)
    found = ctx.store.find(tags=tags) if recover else []
    found = [j for j in found if j.tags.get("rung", "0") == str(rung)]
    if found:
        job = found[0]
    else:
        name = f"{spec.job.name[:170]}-{number}" + (f"-rung{rung}" if rung else "")
        job_spec = spec.trial_job(params, name, tags)
        [job_id] = ctx.store.submit([job_spec], ctx.clock.now() + due_in).job_ids
        job = ctx.store.get(job_id)
    tunings.link(tuning.id, number, job.id, rung)
    return job


@dataclass(frozen=True)
class Best:
    trial: int
    value: float
    params: dict[str, Any]
    job_id: int


def record_progress(
    ctx: StepContext,
    tunings: Tunings,
    tuning: TuningJob,
    spec: TuningSpec,
    trials: int,
    completed: int,
    failed: int,
    best: Best | None,
    ended: bool,
) -> int:
    """Write a pass's counts and best, and let go of the tuning job; or end it, with its
    digest's notification rows. Returns 1 if it ended."""
    values: dict[str, Any] = {
        "trials": trials,
        "completed": completed,
        "failed": failed,
        "best_trial": None if best is None else best.trial,
        "best_job_id": None if best is None else best.job_id,
        "best_value": None if best is None else best.value,
        "best_params": None if best is None else best.params,
        "lease_until": None,
        "leased_by": None,
    }
    if ended:
        now = ctx.clock.now()
        if tuning.stop_requested:
            status = TuningStatus.STOPPED
        else:
            status = TuningStatus.COMPLETED if best is not None else TuningStatus.FAILED
        values.update(status=status, ended_at=now)
        rows = _digest_rows(tuning, spec, status, now)
        return 0 if tunings.finish(tuning, values, rows) is None else 1
    tunings.update(tuning, **values)
    return 0


def _digest_rows(
    tuning: TuningJob, spec: TuningSpec, status: TuningStatus, now: float
) -> list[dict[str, Any]]:
    notify = spec.job.notify
    if status.value.lower() not in notify.on:
        return []
    targets = [("email", address) for address in dict.fromkeys(notify.email)]
    if notify.webhook:
        targets.append(("webhook", notify.webhook))
    if notify.console:
        targets.append(("console", "console"))
    return [
        {
            "key": f"tuning:{tuning.id}",
            "channel": channel,
            "recipient": recipient,
            "job_id": None,
            "submission": None,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_try_at": now,
        }
        for channel, recipient in targets
    ]
