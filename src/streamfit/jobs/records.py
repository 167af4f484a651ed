"""The rows of the job store, as frozen dataclasses: what the steps, the CLI and the
notifiers read and hand back to the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import Status

__all__ = ["Change", "Event", "Failures", "Job", "Notification", "Submission"]

_SIGNATURE, _STREAK, _LAUNCH_ERRORS = "signature", "streak", "launch_errors"
_STALLED, _PROGRESS, _RESTARTS = "stalled", "progress", "restarts"
_NOT_KINDS = {_SIGNATURE, _STREAK, _LAUNCH_ERRORS, _STALLED, _PROGRESS, _RESTARTS}


@dataclass(frozen=True)
class Failures:
    """A job's failures so far (the ``failures`` column, JSON): failed attempts by failure
    kind, the last error's fingerprint and how many times in a row it came, and the launches
    that failed without using an attempt; for a continuous job, also the failures in a row
    without progress, the progress seen at the last failure, and the restarts that followed
    progress (:mod:`~streamfit.jobs.continuous`). The retry step decides from these; whether a
    job failed for good is :attr:`Job.final`.

    >>> f = Failures().failed("algorithm", "3fa9c0").failed("algorithm", "3fa9c0")
    >>> f.count("algorithm"), f.streak, f.to_json()
    (2, 2, {'algorithm': 2, 'signature': '3fa9c0', 'streak': 2})
    >>> Failures.from_json(f.to_json()) == f
    True
    """

    #: Failed attempts by failure kind (``algorithm``, ``infrastructure``, ``invalid``).
    by_kind: dict[str, int] = field(default_factory=dict)
    signature: str | None = None
    streak: int = 0
    launch_errors: int = 0
    #: A continuous job's failures in a row with no progress between them.
    stalled: int = 0
    #: A continuous job's progress (its newest checkpoint or version) at its last failure.
    progress: str | None = None
    #: A continuous job's restarts after a failure that followed progress (no attempt spent).
    restarts: int = 0

    def count(self, kind: str) -> int:
        return self.by_kind.get(kind, 0)

    def failed(self, kind: str, signature: str) -> Failures:
        """One more failed attempt of ``kind``, whose error has this ``signature``."""
        streak = self.streak + 1 if signature == self.signature else 1
        by_kind = {**self.by_kind, kind: self.count(kind) + 1}
        return replace(self, by_kind=by_kind, signature=signature, streak=streak)

    def progressed(self, progress: str) -> Failures:
        """A continuous job's failure after ``progress``: a restart, no attempt spent; the
        budgets count the failures since.

        >>> f = Failures().failed("algorithm", "3fa9c0").progressed("1733011200")
        >>> f.count("algorithm"), f.stalled, f.restarts, f.to_json()["progress"]
        (0, 0, 1, '1733011200')
        """
        return replace(
            self,
            by_kind={},
            signature=None,
            streak=0,
            stalled=0,
            progress=progress,
            restarts=self.restarts + 1,
        )

    def stalled_at(self, progress: str) -> Failures:
        """One more failure of a continuous job with no progress since the one before."""
        return replace(self, stalled=self.stalled + 1, progress=progress)

    def launch_failed(self) -> Failures:
        """One more launch that failed before a run existed (no attempt used)."""
        return replace(self, launch_errors=self.launch_errors + 1)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Failures:
        by_kind = {k: int(v) for k, v in doc.items() if k not in _NOT_KINDS}
        signature, progress = doc.get(_SIGNATURE), doc.get(_PROGRESS)
        return cls(
            by_kind,
            None if signature is None else str(signature),
            int(doc.get(_STREAK, 0)),
            int(doc.get(_LAUNCH_ERRORS, 0)),
            int(doc.get(_STALLED, 0)),
            None if progress is None else str(progress),
            int(doc.get(_RESTARTS, 0)),
        )

    def to_json(self) -> dict[str, Any]:
        """As the column holds it (and ``jobs show --json`` prints it): keys only where set."""
        doc: dict[str, Any] = dict(self.by_kind)
        if self.signature is not None:
            doc.update({_SIGNATURE: self.signature, _STREAK: self.streak})
        if self.launch_errors:
            doc[_LAUNCH_ERRORS] = self.launch_errors
        if self.stalled:
            doc[_STALLED] = self.stalled
        if self.progress is not None:
            doc[_PROGRESS] = self.progress
        if self.restarts:
            doc[_RESTARTS] = self.restarts
        return doc


@dataclass(frozen=True)
class Job:
    """A row of the jobs table."""

    id: int
    name: str
    owner: str
    share: str  # whose fair share it runs on
    submission: str
    spec: dict[str, Any]
    status: Status
    #: Terminal: Completed, Stopped, or Failed for good (no retry follows). The store sets it
    #: on every change to Completed or Stopped and clears it on a change to New; a Failed job
    #: gets it when the retry step (or a launch that can never work) rules a retry out.
    #: Whoever asks whether a job has ended asks this (a query can: ``final`` is a column).
    final: bool
    attempt: int
    max_attempts: int
    failures: Failures
    backend: str | None
    backend_ref: str | None
    failure_kind: str | None
    failure_reason: str | None
    stop_requested: bool
    priority: int
    created_at: float
    launched_at: float | None
    started_at: float | None
    ended_at: float | None
    next_attempt_at: float
    output_uri: str | None
    checkpoint_uri: str | None
    metrics: dict[str, Any] | None
    tags: dict[str, str]
    version: int
    #: Its run is charged to its share up to this time (:mod:`~streamfit.jobs.shares`).
    charged_at: float | None

    @property
    def is_terminal(self) -> bool:
        """Whether the job has ended for good (:attr:`final`)."""
        return self.final

    def spec_model(self) -> JobSpec:
        return JobSpec.model_validate(self.spec)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Job:
        values = {f.name: row[f.name] for f in fields(cls)}
        values["status"] = Status(values["status"])
        values["failures"] = Failures.from_json(values["failures"])
        return cls(**values)


@dataclass(frozen=True)
class Event:
    id: int
    job_id: int
    at: float
    from_status: str | None
    to_status: str
    attempt: int
    failure_kind: str | None
    detail: str | None
    final: bool
    notified: bool


@dataclass(frozen=True)
class Notification:
    id: int
    key: str
    channel: str
    recipient: str
    job_id: int | None
    submission: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: float
    next_try_at: float
    sent_at: float | None


@dataclass(frozen=True)
class Submission:
    id: str
    job_ids: list[int]


@dataclass(frozen=True)
class Change:
    """One guarded status change: ``job`` as it was read, to ``to``, with other columns."""

    job: Job
    to: Status
    detail: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
