"""The job store: SQLAlchemy over SQLite (the embedded default) or PostgreSQL.

Every status change is a guarded update (``... WHERE id = ? AND status = ? AND version = ?``)
that writes its event row in the same transaction, so concurrent schedulers and a crash at any
instant can neither lose a change nor apply one twice. SQLite runs in WAL mode, and write
transactions start with ``BEGIN IMMEDIATE`` so that two writers queue instead of deadlocking.

On PostgreSQL, where several schedulers on several machines may share the store, the steps
take their work with :meth:`Store.claim_due` and friends: ``SELECT ... FOR NO KEY UPDATE SKIP
LOCKED`` in a transaction that lasts as long as the step works on those rows, so each
scheduler gets rows no other one holds instead of all of them fighting over the first page.

:class:`Store` is assembled from its parts: the database, its identity and its transactions
(:mod:`~streamfit.jobs.store_base`); claims and the guarded writes
(:mod:`~streamfit.jobs.store_claims`); the queries of jobs and events
(:mod:`~streamfit.jobs.store_queries`) and of notifications
(:mod:`~streamfit.jobs.store_notifications`); fair share's usage and queue
(:mod:`~streamfit.jobs.store_shares`); here, submitting and changing jobs.

A store has an identity (:attr:`Store.id`, written when it is created), which run names carry;
:meth:`Store.verify` tells a long-lived process that its store was deleted, replaced or reset
under it. Opening a store that cannot be used (missing, read-only, corrupt, not streamfit's)
raises a :class:`~streamfit.jobs.errors.StoreError` that says what to do.

>>> store = Store("sqlite://")
>>> from streamfit.jobs.spec import JobSpec
>>> spec = JobSpec(name="hello", owner="a@example.com", command=["echo", "hi"])
>>> sub = store.submit([spec], now=0.0)
>>> store.get(sub.job_ids[0]).status
<Status.NEW: 'New'>
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from streamfit.jobs.errors import StaleJob
from streamfit.jobs.records import Change, Event, Failures, Job, Notification, Submission
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import Status
from streamfit.jobs.store_claims import Claim, apply_change
from streamfit.jobs.store_notifications import NotificationQueries
from streamfit.jobs.store_queries import JobQueries
from streamfit.jobs.store_shares import ShareQueries
from streamfit.jobs.tables import events, jobs, metadata, submissions

__all__ = [
    "Change",
    "Claim",
    "Event",
    "Failures",
    "Job",
    "Notification",
    "Store",
    "Submission",
]


class Store(JobQueries, NotificationQueries, ShareQueries):
    """Jobs, their events and notifications, in one database.

    ``create``: make the store if there is none (a new SQLite file, or the schema in an empty
    database); else :class:`~streamfit.jobs.errors.NoStore`. An existing store is migrated to
    this version's schema.
    """

    def submit(self, specs: Sequence[JobSpec], now: float) -> Submission:
        """Store ``specs`` as New jobs of one submission, in one transaction."""
        sub_id = uuid.uuid4().hex[:16]
        digest = next((s.notify.model_dump() for s in specs if s.notify.digest), None)
        rows = [
            {
                "name": s.name,
                "owner": s.owner,
                "share": s.share,
                "submission": sub_id,
                "spec": s.model_dump(mode="json"),
                "status": Status.NEW.value,
                "final": False,
                "attempt": 1,
                "max_attempts": 1 + s.retry.algorithm + s.retry.infrastructure,
                "failures": Failures().to_json(),
                "stop_requested": False,
                "priority": s.priority,
                "created_at": now,
                "next_attempt_at": now,
                "tags": s.tags,
                "version": 1,
            }
            for s in specs
        ]
        with self._write() as conn:
            conn.execute(
                submissions.insert(),
                {
                    "id": sub_id,
                    "created_at": now,
                    "n_jobs": len(specs),
                    "owner": specs[0].owner,
                    "digest": digest,
                },
            )
            ids = [r.id for r in conn.execute(jobs.insert().returning(jobs.c.id), rows)]
            conn.execute(
                events.insert(),
                [
                    {
                        "job_id": i,
                        "at": now,
                        "from_status": None,
                        "to_status": "New",
                        "attempt": 1,
                        "detail": "submitted",
                        "final": False,
                        "notified": False,
                    }
                    for i in ids
                ],
            )
        return Submission(sub_id, sorted(ids))

    # -- guarded changes -------------------------------------------------------------------

    def apply(self, changes: Sequence[Change], now: float) -> list[Job | None]:
        """Apply guarded changes in one transaction; a change lost to another writer (the job
        moved on since it was read) is skipped and comes back as ``None``."""
        return self._transaction(lambda conn: [apply_change(conn, c, now) for c in changes])

    def transition(
        self, job: Job, to: Status, now: float, detail: str | None = None, **values: Any
    ) -> Job:
        """One guarded change; :class:`StaleJob` if another writer changed the job first."""
        (done,) = self.apply([Change(job, to, detail, values)], now)
        if done is None:
            raise StaleJob(f"job {job.id} changed since it was read (was {job.status})")
        return done

    def request_stop(self, job_id: int) -> Job:
        """Mark a job to be stopped; the steps act on the mark."""
        self._transaction(
            lambda conn: conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.final.is_(False))
                .values(stop_requested=True, version=jobs.c.version + 1)
            )
        )
        return self.get(job_id)

    @staticmethod
    def schema() -> sa.MetaData:
        return metadata
