"""Preemption, opt-in: a running job whose spec says ``preemptible: true`` (it checkpoints) may
be stopped when a job of higher priority waits for its room, and goes back to New as its next
attempt, having spent none of its budgets; it resumes from its checkpoint folder, which
belongs to the job.

Crash-safe in two steps: the launch step first marks the victim (``failure_kind:
preempted``, a guarded change with its event), then stops its run; the monitor stops a marked
run that is still going (a scheduler that died between the two) and, when the run has ended
as stopped, queues the job again (:func:`requeue`). A victim already marked counts as room
on its way, so a job waiting for it marks no second one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from streamfit.jobs.context import StepContext
from streamfit.jobs.records import Change, Job
from streamfit.jobs.spec import Resources
from streamfit.jobs.status import FailureKind, Status

__all__ = ["Preemption", "is_preempted", "requeue"]

log = logging.getLogger(__name__)

_PREEMPTED = FailureKind.PREEMPTED.value


def is_preempted(job: Job) -> bool:
    """Whether ``job``'s run is being stopped to make room (and not by its owner)."""
    return job.failure_kind == _PREEMPTED and not job.stop_requested


def requeue(
    job: Job, now: float, detail: str = "preempted: queued again, no attempt spent"
) -> Change:
    """A preempted job (or a continuous one that made progress) back to New, as its next
    attempt (a new run name) with no budget spent: its failures are untouched and its
    attempts allowed grow by one."""
    values = {
        "attempt": job.attempt + 1,
        "max_attempts": job.max_attempts + 1,
        "next_attempt_at": now,
        "backend_ref": None,
        "started_at": None,
        "ended_at": None,
    }
    return Change(job, Status.NEW, detail, values)


@dataclass
class Preemption:
    """One launch pass's preemptions (the running jobs are read once, when first needed)."""

    ctx: StepContext
    now: float
    _running: list[Job] | None = field(default=None, init=False)

    def make_room(self, waiting: Job, want: Resources, free: Resources) -> bool:
        """Stop the fewest preemptible runs of lower priority than ``waiting`` (lowest
        priority first, then the latest started) that give it room; whether room is on its
        way (False where even all of them would not give it room)."""
        running = self._victims()
        room = free + Resources.total(_resources(j) for j in running if is_preempted(j))
        if want.fits_within(room):
            return room != free  # (the runs stopped before are ending)
        chosen = []
        for job in sorted(
            (j for j in running if j.priority < waiting.priority and not is_preempted(j)),
            key=lambda j: (j.priority, -(j.started_at or 0.0), -j.id),
        ):
            chosen.append(job)
            room = room + _resources(job)
            if want.fits_within(room):
                break
        else:
            return False
        reason = f"preempted for job {waiting.id} (priority {waiting.priority})"
        changes = [
            Change(j, j.status, reason, {"failure_kind": _PREEMPTED, "failure_reason": reason})
            for j in chosen
        ]
        stopped = 0
        for marked in self.ctx.store.apply(changes, self.now):
            if marked is None:  # it moved on (ended, or another scheduler took it)
                continue
            assert marked.backend_ref is not None
            self.ctx.backend.stop(marked.backend_ref)
            stopped += 1
            running = [marked if j.id == marked.id else j for j in running]
        self._running = running
        log.info("%s: stopped %d runs", reason, stopped)
        return stopped > 0

    def _victims(self) -> list[Job]:
        if self._running is None:
            self._running = [
                j
                for j in self.ctx.store.find(status=Status.IN_PROGRESS)
                if j.spec.get("preemptible") and j.backend_ref is not None
            ]
        return self._running


def _resources(job: Job) -> Resources:
    return Resources.model_validate(job.spec["resources"])
