"""Job statuses, failure kinds, and the one table of allowed transitions.

```
New ──launch ok──▶ Launched ──▶ InProgress ──▶ Completed
 ▲  └─ capacity error: stays New, backs off     ├──▶ Stopped  (asked by its owner)
 │                                              └──▶ Failed ──▶ budget left: New, attempt + 1
 └──────────────────────────────────────────────────────────┘   otherwise:  Failed, final
```
A Launched run may also end (Completed, Failed, Stopped) before it is seen running, a New
job may be stopped before it is launched, and an InProgress job that checkpoints and opted in
(``preemptible``) may be stopped for a job of higher priority and go back to New, as its next
attempt, having spent none of its budgets.
"""

from __future__ import annotations

from enum import StrEnum

from streamfit.jobs.errors import TransitionError

__all__ = ["ACTIVE", "TERMINAL", "TRANSITIONS", "FailureKind", "Status", "check_transition"]


class Status(StrEnum):
    NEW = "New"  # waiting to be launched (first attempt, retry, or capacity backoff)
    LAUNCHED = "Launched"  # the backend accepted the run; not yet seen running
    IN_PROGRESS = "InProgress"  # seen running
    COMPLETED = "Completed"  # exited successfully; metrics recorded
    FAILED = "Failed"  # exited with an error; ``final`` once retries are ruled out
    STOPPED = "Stopped"  # stopped at its owner's request


class FailureKind(StrEnum):
    CAPACITY = "capacity"  # no room now: waits, uses up no attempts
    INFRASTRUCTURE = "infrastructure"  # lost process, signal, preemption: retried from checkpoint
    ALGORITHM = "algorithm"  # the job's own error: retried while its budget lasts
    INVALID = "invalid"  # bad spec or input: never retried
    PREEMPTED = "preempted"  # stopped for a job of higher priority: queued again, no attempt spent


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.LAUNCHED, Status.FAILED, Status.STOPPED}),
    Status.LAUNCHED: frozenset(
        {Status.IN_PROGRESS, Status.COMPLETED, Status.FAILED, Status.STOPPED}
    ),
    Status.IN_PROGRESS: frozenset(
        {Status.COMPLETED, Status.FAILED, Status.STOPPED, Status.NEW}  # New: preempted
    ),
    Status.FAILED: frozenset({Status.NEW}),  # a retry (automatic, or asked for)
    Status.STOPPED: frozenset({Status.NEW}),  # asked for again by its owner
    Status.COMPLETED: frozenset(),
}

#: Statuses in which a run may exist and must be watched.
ACTIVE = frozenset({Status.LAUNCHED, Status.IN_PROGRESS})
#: Statuses a job may end in (Failed only once ``final``).
TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.STOPPED})


def check_transition(job_id: int, old: Status, new: Status) -> None:
    """Raise :class:`TransitionError` unless ``old -> new`` is in the table."""
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "none: it is final"
        raise TransitionError(f"job {job_id}: cannot go from {old} to {new} (allowed: {allowed})")
