"""The rows of the job store, as frozen dataclasses: what the steps, the CLI and the
notifiers read and hand back to the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import TERMINAL, Status

__all__ = ["Change", "Event", "Job", "Notification", "Submission"]


@dataclass(frozen=True)
class Job:
    """A row of the jobs table."""

    id: int
    name: str
    owner: str
    submission: str
    spec: dict[str, Any]
    status: Status
    final: bool
    attempt: int
    max_attempts: int
    failures: dict[str, Any]  # counts by kind, and the last error's signature and streak
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

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL and (self.final or self.status != Status.FAILED)

    def spec_model(self) -> JobSpec:
        return JobSpec.model_validate(self.spec)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Job:
        values = {f.name: row[f.name] for f in fields(cls)}
        values["status"] = Status(values["status"])
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
