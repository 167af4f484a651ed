"""Reading jobs and events, and claiming jobs for the steps: the store's queries."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from streamfit.jobs.errors import NoSuchJob
from streamfit.jobs.records import Event, Job
from streamfit.jobs.status import ACTIVE, Status
from streamfit.jobs.store_base import StoreBase
from streamfit.jobs.store_claims import Claim
from streamfit.jobs.tables import events, jobs, submissions

__all__ = ["JobQueries"]


class JobQueries(StoreBase):
    """What the steps, the CLI and the notifiers read: jobs, their events, submissions."""

    def get(self, job_id: int) -> Job:
        with self._read() as conn:
            row = conn.execute(jobs.select().where(jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise NoSuchJob(f"no job {job_id}")
        return Job.from_row(row)

    def find(
        self,
        *,
        status: Status | Sequence[Status] | None = None,
        owner: str | None = None,
        submission: str | None = None,
        tags: Mapping[str, str] | None = None,
        final: bool | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Job]:
        query = jobs.select()
        if status is not None:
            wanted = [status] if isinstance(status, Status) else list(status)
            query = query.where(jobs.c.status.in_([s.value for s in wanted]))
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if submission is not None:
            query = query.where(jobs.c.submission == submission)
        for key, value in (tags or {}).items():
            query = query.where(jobs.c.tags[key].as_string() == value)
        if final is not None:
            query = query.where(jobs.c.final == final)
        query = query.order_by(jobs.c.id.desc() if newest_first else jobs.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [Job.from_row(r) for r in conn.execute(query).mappings()]

    def due(self, now: float, limit: int = 1000) -> list[Job]:
        """New jobs whose next attempt has come, by priority then age."""
        with self._read() as conn:
            return [Job.from_row(r) for r in conn.execute(_due(now, limit)).mappings()]

    def claim_due(self, now: float, limit: int) -> contextlib.AbstractContextManager[Claim[Job]]:
        """The launch step's work: as :meth:`due`, less the jobs another scheduler holds."""
        return self._claim(_due(now, limit), Job.from_row)

    def claim_jobs(
        self, status: Sequence[Status], *, final: bool | None = None, after: int = 0, limit: int
    ) -> contextlib.AbstractContextManager[Claim[Job]]:
        """Up to ``limit`` jobs in ``status`` with an id above ``after``, by id, less the
        jobs another scheduler holds (the monitor and retry steps' work, a page at a time)."""
        query = (
            jobs.select()
            .where(jobs.c.status.in_([s.value for s in status]), jobs.c.id > after)
            .order_by(jobs.c.id)
            .limit(limit)
        )
        if final is not None:
            query = query.where(jobs.c.final == final)
        return self._claim(query, Job.from_row)

    def active(self) -> list[Job]:
        return self.find(status=sorted(ACTIVE))

    def events(self, job_id: int | None = None, since: float | None = None) -> list[Event]:
        query = events.select().order_by(events.c.id)
        if job_id is not None:
            query = query.where(events.c.job_id == job_id)
        if since is not None:
            query = query.where(events.c.at >= since)
        with self._read() as conn:
            return [Event(**r) for r in conn.execute(query).mappings()]

    def submission_jobs(self, submission: str) -> list[Job]:
        return self.find(submission=submission)

    def submission_digest(self, submission: str) -> dict[str, Any] | None:
        """The notify settings of a digest submission; None for per-job notifications."""
        query = sa.select(submissions.c.digest).where(submissions.c.id == submission)
        with self._read() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else dict(value)

    def counts(self) -> dict[str, int]:
        query = sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
        with self._read() as conn:
            return {status: int(n) for status, n in conn.execute(query)}


def _due(now: float, limit: int) -> sa.Select[Any]:
    return (
        jobs.select()
        .where(jobs.c.status == Status.NEW.value, jobs.c.next_attempt_at <= now)
        .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)
        .limit(limit)
    )
