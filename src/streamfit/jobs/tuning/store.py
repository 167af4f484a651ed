"""The tuning jobs of a store: their rows, the links from trials to jobs, and the guarded
writes of the tuning step.

A tuning step works on a tuning job only while it holds its lease (``lease_until``, taken by
a guarded update): two schedulers never ask for trials of one tuning job at once. The lease
names its holder (``host:pid``): a scheduler restarted after a crash takes a lease whose
holder is a dead process of its own host at once; another host's runs out. Every later write
of that pass is guarded by the row's version, so a pass that outlived its lease changes
nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from streamfit.jobs.errors import NoSuchJob
from streamfit.jobs.records import Job
from streamfit.jobs.store import Store
from streamfit.jobs.store_claims import _insert_ignore
from streamfit.jobs.tables import jobs, tuning_jobs, tuning_promotions, tuning_trials
from streamfit.jobs.tuning.records import TuningJob, TuningStatus
from streamfit.jobs.tuning.spec import TuningSpec

__all__ = ["Tunings", "holder", "holder_is_dead"]


def holder() -> str:
    """This process, as a lease names it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(name: str | None) -> bool:
    """Whether ``name`` is a process of this host that no longer runs (this process is
    alive: a lease of its own is held by one of its passes, or by another of its threads).

    >>> holder_is_dead(holder()), holder_is_dead(None), holder_is_dead("elsewhere:1")
    (False, False, False)
    """
    host, _, pid = (name or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    return False


class Tunings:
    """The tuning jobs of ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, spec: TuningSpec, now: float) -> TuningJob:
        """Store a new Running tuning job; the tuning step asks for its trials."""

        def work(conn: sa.Connection) -> int:
            row = {
                "name": spec.job.name,
                "owner": spec.job.owner,
                "spec": spec.model_dump(mode="json"),
                "status": TuningStatus.RUNNING.value,
                "study": "",
                "created_at": now,
                "trials": 0,
                "completed": 0,
                "failed": 0,
                "stop_requested": False,
                "version": 1,
            }
            new_id = int(
                conn.execute(tuning_jobs.insert().returning(tuning_jobs.c.id), row).one()[0]
            )
            # The store's id keeps the studies of a store made again in the same database apart.
            study = f"streamfit-{self.store.id[:8]}-tuning-{new_id}"
            conn.execute(tuning_jobs.update().where(tuning_jobs.c.id == new_id).values(study=study))
            return new_id

        return self.get(self.store._transaction(work))

    def get(self, tuning_id: int) -> TuningJob:
        with self.store._read() as conn:
            row = conn.execute(tuning_jobs.select().where(tuning_jobs.c.id == tuning_id)).mappings()
            found = row.first()
        if found is None:
            raise NoSuchJob(f"no tuning job {tuning_id}")
        return TuningJob.from_row(found)

    def find(
        self,
        *,
        owner: str | None = None,
        status: Sequence[TuningStatus] | None = None,
        limit: int | None = None,
    ) -> list[TuningJob]:
        query = tuning_jobs.select().order_by(tuning_jobs.c.id.desc())
        if owner is not None:
            query = query.where(tuning_jobs.c.owner == owner)
        if status is not None:
            query = query.where(tuning_jobs.c.status.in_([s.value for s in status]))
        if limit is not None:
            query = query.limit(limit)
        with self.store._read() as conn:
            return [TuningJob.from_row(r) for r in conn.execute(query).mappings()]

    def due(self, now: float, limit: int = 100) -> list[TuningJob]:
        """Running tuning jobs that no live scheduler holds."""
        query = (
            tuning_jobs.select()
            .where(tuning_jobs.c.status == TuningStatus.RUNNING.value)
            .order_by(tuning_jobs.c.id)
            .limit(limit)
        )
        with self.store._read() as conn:
            found = [TuningJob.from_row(r) for r in conn.execute(query).mappings()]
        return [t for t in found if _free(t, now)]

    def lease(self, tuning: TuningJob, now: float, seconds: float) -> TuningJob | None:
        """Hold ``tuning`` until ``now + seconds``; None if another scheduler holds it or it
        changed since it was read."""
        if not _free(tuning, now):
            return None
        # (the version guard makes the check above and the write one step)
        return self.update(tuning, lease_until=now + seconds, leased_by=holder())

    def update(self, tuning: TuningJob, **values: Any) -> TuningJob | None:
        """A guarded change of ``tuning``'s columns; None if its version moved on."""

        def work(conn: sa.Connection) -> bool:
            return _guarded(conn, tuning, values)

        if not self.store._transaction(work):
            return None
        return TuningJob.from_row({**_as_row(tuning), **values, "version": tuning.version + 1})

    def finish(
        self, tuning: TuningJob, values: dict[str, Any], notifications: Sequence[dict[str, Any]]
    ) -> TuningJob | None:
        """End ``tuning`` and record its digest's notification rows, in one transaction."""

        def work(conn: sa.Connection) -> bool:
            if not _guarded(conn, tuning, values):
                return False
            if notifications:
                conn.execute(_insert_ignore(conn), list(notifications))
            return True

        if not self.store._transaction(work):
            return None
        return TuningJob.from_row({**_as_row(tuning), **values, "version": tuning.version + 1})

    def request_stop(self, tuning_id: int) -> TuningJob:
        """Mark a Running tuning job to be stopped; its next pass acts on the mark. (The
        version is left alone: a pass under way still records what it did, and lets go.)"""
        self.store._transaction(
            lambda conn: conn.execute(
                tuning_jobs.update()
                .where(
                    tuning_jobs.c.id == tuning_id,
                    tuning_jobs.c.status == TuningStatus.RUNNING.value,
                )
                .values(stop_requested=True)
            )
        )
        return self.get(tuning_id)

    def link(self, tuning_id: int, trial: int, job_id: int, rung: int = 0) -> None:
        """Record that ``job_id`` runs ``trial`` (at ``rung``, a multi-fidelity trial's
        later one); once: a link already there is kept."""
        row = {"tuning_id": tuning_id, "trial": trial, "job_id": job_id}
        table = tuning_trials if rung == 0 else tuning_promotions
        if rung:
            row["rung"] = rung

        def work(conn: sa.Connection) -> None:
            if conn.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            conn.execute(insert(table).on_conflict_do_nothing(), row)

        self.store._transaction(work)

    def rungs(self, tuning_id: int) -> dict[tuple[int, int], Job]:
        """Every job of a tuning job, by (trial, rung): rung 0 is each trial's first job."""
        first = self.trials(tuning_id)
        out = {(trial, 0): job for trial, job in first.items()}
        query = (
            sa.select(tuning_promotions.c.trial, tuning_promotions.c.rung, jobs)
            .join(jobs, jobs.c.id == tuning_promotions.c.job_id)
            .where(tuning_promotions.c.tuning_id == tuning_id)
        )
        with self.store._read() as conn:
            for r in conn.execute(query).mappings():
                out[r["trial"], r["rung"]] = Job.from_row(r)
        return out

    def trials(self, tuning_id: int) -> dict[int, Job]:
        """The jobs of a tuning job's trials, by trial number."""
        query = (
            sa.select(tuning_trials.c.trial, jobs)
            .join(jobs, jobs.c.id == tuning_trials.c.job_id)
            .where(tuning_trials.c.tuning_id == tuning_id)
            .order_by(tuning_trials.c.trial)
        )
        with self.store._read() as conn:
            return {r["trial"]: Job.from_row(r) for r in conn.execute(query).mappings()}


def _free(tuning: TuningJob, now: float) -> bool:
    """Whether no live scheduler holds ``tuning``."""
    held = tuning.lease_until is not None and tuning.lease_until > now
    return not held or holder_is_dead(tuning.leased_by)


def _guarded(conn: sa.Connection, tuning: TuningJob, values: dict[str, Any]) -> bool:
    query = tuning_jobs.update().where(
        tuning_jobs.c.id == tuning.id, tuning_jobs.c.version == tuning.version
    )
    values = {k: v.value if isinstance(v, TuningStatus) else v for k, v in values.items()}
    result = conn.execute(query.values(**values, version=tuning.version + 1))
    return result.rowcount == 1


def _as_row(tuning: TuningJob) -> dict[str, Any]:
    return {k: getattr(tuning, k) for k in TuningJob.__dataclass_fields__}
