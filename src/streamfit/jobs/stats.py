"""Trends over the store: how jobs fare, grouped by the day they were submitted, their owner,
their share or one of their tags; and each share's usage now (:func:`share_usage_stats`).

The counting is done by the database (SQLAlchemy Core, the same SQL on SQLite and
PostgreSQL); percentiles need the values themselves, so the database returns one or two
numbers per job and Python interpolates (linearly between ranks, as PostgreSQL's
``percentile_cont`` and numpy's default do).

>>> from streamfit.jobs.spec import JobSpec
>>> store = Store("sqlite://")
>>> spec = JobSpec(name="a", owner="ann@example.com", command=["true"])
>>> job = store.get(store.submit([spec], now=0.0).job_ids[0])
>>> job = store.transition(job, Status.LAUNCHED, 4.0)
>>> job = store.transition(job, Status.COMPLETED, 9.0, started_at=5.0, ended_at=9.0)
>>> (row,) = job_stats(store, by="owner")
>>> row["group"], row["completed"], row["success_rate"], row["run_time"]["p50"]
('ann@example.com', 1, 1.0, 4.0)
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction

from streamfit.errors import ConfigError
from streamfit.jobs.settings import FairShare
from streamfit.jobs.shares import factor
from streamfit.jobs.spec import Resources
from streamfit.jobs.status import FailureKind, Status
from streamfit.jobs.store import Store
from streamfit.jobs.tables import events, jobs

__all__ = [
    "GroupStats",
    "Percentiles",
    "ShareUsage",
    "job_stats",
    "percentile",
    "share_usage_stats",
]

_DAY = 86_400
_FAILED, _NEW, _LAUNCHED = Status.FAILED.value, Status.NEW.value, Status.LAUNCHED.value


class Percentiles(TypedDict):
    """Seconds; ``None`` when no job of the group has the measure yet."""

    n: int
    p50: float | None
    p90: float | None
    p99: float | None


class GroupStats(TypedDict):
    group: str | None  # a day (YYYY-MM-DD, UTC), an owner, or a tag's value (None: untagged)
    jobs: int
    completed: int
    failed: int  # failed for good; a failed job that will be retried is in flight
    stopped: int
    in_flight: int  # New, Launched, InProgress, or Failed and about to be retried
    success_rate: float | None  # completed / (completed + failed + stopped)
    failures: dict[str, int]  # failed attempts, by failure kind
    retries: dict[str, int]  # launches tried again, by the kind of failure that caused them
    wait_to_launch: Percentiles  # submitted -> first launched
    run_time: Percentiles  # started -> ended, of finished jobs


class _DayNumber(GenericFunction[int]):
    """Days since the epoch of a time in epoch seconds (``floor(t / 86400)``)."""

    type = sa.Integer()
    inherit_cache = True
    name = "streamfit_day_number"


@compiles(_DayNumber)
def _day_number(element: _DayNumber, compiler: SQLCompiler, **kw: Any) -> str:
    return f"floor({compiler.process(element.clauses, **kw)} / {_DAY})"


@compiles(_DayNumber, "sqlite")
def _day_number_sqlite(element: _DayNumber, compiler: SQLCompiler, **kw: Any) -> str:
    # floor() exists only in SQLite builds with the math functions; times are positive, so
    # truncating is flooring.
    return f"CAST({compiler.process(element.clauses, **kw)} / {_DAY} AS INTEGER)"


class _Unindexed(GenericFunction[str]):
    """A column's value, read from the row rather than through an index (SQLite: ``+col``)."""

    type = sa.String()
    inherit_cache = True
    name = "streamfit_unindexed"


@compiles(_Unindexed)
def _unindexed(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_Unindexed, "sqlite")
def _unindexed_sqlite(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    # Grouping by owner, SQLite walks the owner's index and reads each job's row from the
    # table in that order: twice the work of one pass over the table and a sort.
    return f"+{compiler.process(element.clauses, **kw)}"


def _group_column(by: str) -> sa.ColumnElement[Any]:
    if by == "day":
        return _DayNumber(jobs.c.created_at)
    if by == "owner":
        return _Unindexed(jobs.c.owner)
    if by == "share":
        return _Unindexed(jobs.c.share)
    if by.startswith("tag:") and by[4:]:
        tag: sa.ColumnElement[Any] = jobs.c.tags[by[4:]].as_string()
        return tag
    raise ConfigError(f"cannot group by {by!r}: use day, owner, share or tag:NAME")


def _label(by: str, value: Any) -> str | None:
    if by == "day" and value is not None:
        return dt.datetime.fromtimestamp(int(value) * _DAY, dt.UTC).date().isoformat()
    return None if value is None else str(value)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of sorted ``values``, interpolating between ranks.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 90)
    (2.5, 3.7)
    """
    if not values:
        return None
    rank = (len(values) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    value = values[low] + (values[high] - values[low]) * (rank - low)
    return round(value, 6)  # to the microsecond: 3.7, not 3.7000000000000006


def _percentiles(values: list[float]) -> Percentiles:
    values.sort()
    return Percentiles(
        n=len(values),
        p50=percentile(values, 50),
        p90=percentile(values, 90),
        p99=percentile(values, 99),
    )


def job_stats(store: Store, by: str = "day", since: float | None = None) -> list[GroupStats]:
    """Per group (``by``: ``day``, ``owner``, ``share`` or ``tag:NAME``), how the jobs
    submitted at or after ``since`` (epoch seconds; default all) fared: counts by outcome,
    success rate, failures and retries by kind, and percentiles of the wait to launch and the
    run time."""
    # The group is computed once in a subquery and grouped on by name: PostgreSQL would not
    # match ``GROUP BY`` to the same expression with its own bound parameters.
    cohort = sa.select(
        jobs.c.id,
        _group_column(by).label("grp"),
        jobs.c.status,
        jobs.c.final,
        jobs.c.created_at,
        jobs.c.started_at,
        jobs.c.ended_at,
    )
    # Every event of a job comes at or after its submission: ``since`` bounds them too.
    recent: sa.ColumnElement[bool] = sa.true()
    if since is not None:
        cohort = cohort.where(jobs.c.created_at >= since)
        recent = events.c.at >= since
    base = cohort.subquery("cohort")

    counts = sa.select(base.c.grp, base.c.status, base.c.final, sa.func.count()).group_by(
        base.c.grp, base.c.status, base.c.final
    )

    failures = (
        sa.select(base.c.grp, events.c.failure_kind, sa.func.count())
        .select_from(events.join(base, events.c.job_id == base.c.id))
        .where(recent, events.c.to_status == _FAILED, events.c.from_status != _FAILED)
        .group_by(base.c.grp, events.c.failure_kind)
    )

    # A retry is Failed -> New, caused by the job's latest failure before it; or New -> New, a
    # launch put off: for want of room (the launch step's detail says "capacity: ...") or
    # because the backend failed to start the run (infrastructure). An event that records its
    # own failure kind is taken at its word.
    earlier = events.alias("earlier")
    cause = (
        sa.select(earlier.c.failure_kind)
        .where(
            earlier.c.job_id == events.c.job_id,
            earlier.c.id < events.c.id,
            earlier.c.to_status == _FAILED,
        )
        .order_by(earlier.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    put_off = sa.case(
        (events.c.detail.like("capacity%"), FailureKind.CAPACITY.value),
        else_=FailureKind.INFRASTRUCTURE.value,
    )
    retry_rows = (
        sa.select(
            base.c.grp,
            sa.func.coalesce(
                events.c.failure_kind,
                sa.case((events.c.from_status == _NEW, put_off), else_=cause),
            ).label("kind"),
        )
        .select_from(events.join(base, events.c.job_id == base.c.id))
        .where(
            recent,
            events.c.to_status == _NEW,
            events.c.from_status.in_([_FAILED, _NEW]),
        )
        .subquery("retry_rows")
    )
    retries = sa.select(retry_rows.c.grp, retry_rows.c.kind, sa.func.count()).group_by(
        retry_rows.c.grp, retry_rows.c.kind
    )

    first_launch = (
        sa.select(events.c.job_id, sa.func.min(events.c.at).label("at"))
        .where(recent, events.c.to_status == _LAUNCHED)
        .group_by(events.c.job_id)
        .subquery("first_launch")
    )
    durations = sa.select(
        base.c.grp,
        (first_launch.c.at - base.c.created_at).label("wait"),
        sa.case((base.c.final, base.c.ended_at - base.c.started_at)).label("run"),
    ).select_from(base.outerjoin(first_launch, first_launch.c.job_id == base.c.id))

    groups: dict[Any, GroupStats] = {}

    def group(key: Any) -> GroupStats:
        if key not in groups:
            groups[key] = GroupStats(
                group=_label(by, key),
                jobs=0,
                completed=0,
                failed=0,
                stopped=0,
                in_flight=0,
                success_rate=None,
                failures={},
                retries={},
                wait_to_launch=_percentiles([]),
                run_time=_percentiles([]),
            )
        return groups[key]

    waits: dict[Any, list[float]] = defaultdict(list)
    runs: dict[Any, list[float]] = defaultdict(list)
    with store._read() as conn:  # one read transaction: the four answers agree
        for key, status, final, n in conn.execute(counts):
            g = group(key)
            g["jobs"] += n
            if status == Status.COMPLETED.value:
                g["completed"] += n
            elif status == Status.STOPPED.value:
                g["stopped"] += n
            elif status == _FAILED and final:
                g["failed"] += n
            else:
                g["in_flight"] += n
        for key, kind, n in conn.execute(failures):
            group(key)["failures"][kind or "unknown"] = n
        for key, kind, n in conn.execute(retries):
            group(key)["retries"][kind or "unknown"] = n
        for key, wait, run in conn.execute(durations):
            if wait is not None:
                waits[key].append(float(wait))
            if run is not None:
                runs[key].append(float(run))

    for key, g in groups.items():
        ended = g["completed"] + g["failed"] + g["stopped"]
        g["success_rate"] = g["completed"] / ended if ended else None
        g["wait_to_launch"] = _percentiles(waits[key])
        g["run_time"] = _percentiles(runs[key])
        g["failures"] = dict(sorted(g["failures"].items()))
        g["retries"] = dict(sorted(g["retries"].items()))
    # Days in order; owners and tag values alphabetically, the untagged last.
    return [groups[k] for k in sorted(groups, key=lambda k: (k is None, k if k is not None else 0))]


class ShareUsage(TypedDict):
    share: str
    weight: float
    usage: float  # CPU-seconds (a run's dominant share of the capacity), decayed to now
    normalized_usage: float  # of all shares' usage
    normalized_weight: float  # of all shares' weights
    factor: float  # fair-share factor: 1 used nothing, 0.5 used its portion, less: more
    running: int
    waiting: int
    held: dict[str, float]  # cpus, gpus, memory_mb its running jobs hold
    caps: dict[str, float]  # the caps set for it (max_jobs, max_cpus, ...)


def share_usage_stats(store: Store, fair: FairShare, now: float) -> list[ShareUsage]:
    """Every share that has used capacity, holds some, waits for some or is configured: its
    weight, usage now and fair-share factor (as the launch step sees them), and its jobs."""
    usage = store.share_usage(now, fair.half_life_seconds)
    waiting = store.waiting_by_share()
    running: dict[str, int] = defaultdict(int)
    held: dict[str, Resources] = defaultdict(Resources.zero)
    for share, want in store.held_by_share():
        running[share] += 1
        held[share] = held[share] + want
    names = sorted(set(usage) | set(waiting) | set(held) | set(fair.shares))
    weights = {s: fair.limits(s).weight for s in names}
    total_usage, total_weight = sum(usage.values()), sum(weights.values())
    rows = []
    for share in names:
        has = held.get(share, Resources.zero())
        used = usage.get(share, 0.0)
        limits = fair.limits(share).model_dump(exclude={"weight"}, exclude_none=True)
        rows.append(
            ShareUsage(
                share=share,
                weight=weights[share],
                usage=used,
                normalized_usage=used / total_usage if total_usage > 0 else 0.0,
                normalized_weight=weights[share] / total_weight,
                factor=factor(used, total_usage, weights[share], total_weight),
                running=running.get(share, 0),
                waiting=waiting.get(share, 0),
                held={"cpus": has.cpus, "gpus": has.gpus, "memory_mb": has.memory_mb},
                caps=limits,
            )
        )
    return rows
