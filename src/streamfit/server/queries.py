"""The job table's queries: every filter a SQL ``WHERE``, every page a keyset page, so that a
store of 100,000 jobs answers as fast as one of 100. The API and the dashboard both read these.

A page ends with an opaque cursor (the last row's sort value and id); the next page starts
after it, so paging never skips or repeats a job while new ones arrive.

>>> from streamfit.jobs.spec import JobSpec
>>> from streamfit.jobs.store import Store
>>> store = Store("sqlite://")
>>> specs = [JobSpec(name=f"lr-{i}", owner="a@example.com", command=["true"]) for i in range(3)]
>>> _ = store.submit(specs, now=1.0)
>>> page = page_jobs(store, JobFilter(name_contains="lr-"), sort="name", limit=2)
>>> [j.name for j in page.jobs], page.counts["New"]
(['lr-0', 'lr-1'], 3)
>>> [j.name for j in page_jobs(store, JobFilter(), sort="name", cursor=page.next_cursor).jobs]
['lr-2']
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa

from streamfit.jobs.records import Job
from streamfit.jobs.status import Status
from streamfit.jobs.store import Store
from streamfit.jobs.tables import jobs
from streamfit.jobs.views import job_detail
from streamfit.server.errors import ApiError

__all__ = [
    "COUNTS_TTL",
    "MAX_LIMIT",
    "SORT_KEYS",
    "JobFilter",
    "JobPage",
    "decode_cursor",
    "encode_cursor",
    "job_page",
    "page_jobs",
    "page_query",
    "parse_time",
]

#: The most jobs one page holds.
MAX_LIMIT = 500
#: Sort key -> column; a ``-`` before the key sorts descending. Ties are broken by id.
SORT_KEYS: dict[str, sa.ColumnElement[Any]] = {
    "created": jobs.c.created_at,
    "name": jobs.c.name,
    "status": jobs.c.status,
    "owner": jobs.c.owner,
    "id": jobs.c.id,
}
_STATUSES = {s.value.lower(): s.value for s in Status}
#: How long the status counts under a filter no index serves (a tag, part of a name) are
#: kept: counting them reads every job (a third of a second at 100,000 on SQLite), while the
#: page itself is read from an index in milliseconds.
COUNTS_TTL = 5.0
_counts_kept: OrderedDict[tuple[str, str, JobFilter], tuple[float, dict[str, int]]] = OrderedDict()
_counts_lock = threading.Lock()
_MAX_TEXT = 320  # no filter value is longer than an owner (the longest stored text compared)


def parse_time(value: str, name: str) -> float:
    """Epoch seconds, or an ISO 8601 date or time (UTC unless it says otherwise).

    >>> parse_time("86400", "created_after"), parse_time("1970-01-02", "created_after")
    (86400.0, 86400.0)
    """
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ApiError(
                f"{name}: {text[:40]!r} is neither epoch seconds nor an ISO date or time "
                "(e.g. 2026-11-01 or 2026-11-01T12:00:00Z)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    if not math.isfinite(seconds):
        raise ApiError(f"{name}: {text[:40]!r} is not a finite number of seconds")
    return seconds


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a table shows. Every field narrows; the defaults show every job.

    >>> f = JobFilter.from_query([("status", "failed,Stopped"), ("tag", "team=ml")])
    >>> f.status, f.tag
    (('Failed', 'Stopped'), (('team', 'ml'),))
    >>> JobFilter.from_query(f.to_query()) == f
    True
    """

    status: tuple[str, ...] = ()
    owner: str | None = None
    #: ``(key, value)`` pairs: the job has every one of these tags.
    tag: tuple[tuple[str, str], ...] = ()
    #: Part of the name (case-insensitive; ``%`` and ``_`` are plain characters).
    name_contains: str | None = None
    #: Epoch seconds: submitted at or after / before.
    created_after: float | None = None
    created_before: float | None = None
    submission: str | None = None

    @classmethod
    def from_query(cls, items: Iterable[tuple[str, str]]) -> JobFilter:
        """From query parameters (``request.query_params.multi_items()``): ``status``
        (repeated or comma-separated), ``owner``, ``tag`` (``KEY=VALUE``, repeated), ``name``,
        ``created_after``, ``created_before`` (epoch seconds or ISO), ``submission``. Other
        parameters (``sort``, ``limit``, ``cursor``) are left to the caller; an empty value
        is no filter. A value that cannot be used is an :class:`ApiError` (400)."""
        status: list[str] = []
        tags: list[tuple[str, str]] = []
        values: dict[str, Any] = {}
        for key, raw in items:
            value = raw.strip()
            if not value:
                continue
            if len(value) > _MAX_TEXT + 64:
                raise ApiError(f"{key}: longer than {_MAX_TEXT + 64} characters")
            if key == "status":
                for part in filter(None, (p.strip() for p in value.split(","))):
                    if part.lower() not in _STATUSES:
                        known = ", ".join(s.value for s in Status)
                        raise ApiError(f"status: {part[:40]!r} is not a status ({known})")
                    if _STATUSES[part.lower()] not in status:
                        status.append(_STATUSES[part.lower()])
            elif key == "tag":
                name, eq, tag_value = value.partition("=")
                if not eq or not name:
                    raise ApiError(f"tag: {value[:40]!r}: expected KEY=VALUE")
                tags.append((name, tag_value))
            elif key in ("owner", "submission"):
                values[key] = value
            elif key in ("name", "name_contains"):
                values["name_contains"] = value
            elif key in ("created_after", "created_before"):
                values[key] = parse_time(value, key)
        return cls(status=tuple(status), tag=tuple(tags), **values)

    def to_query(self) -> list[tuple[str, str]]:
        """As query parameters, for links to the same table (:meth:`from_query` reads them)."""
        items: list[tuple[str, str]] = [("status", s) for s in self.status]
        items += [("tag", f"{k}={v}") for k, v in self.tag]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("status", "tag") or value is None:
                continue
            items.append(("name" if f.name == "name_contains" else f.name, str(value)))
        return items

    def where(self, *, with_status: bool = True) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions (``with_status=False``: all but the status, for the tabs)."""
        conds: list[sa.ColumnElement[bool]] = []
        if with_status and self.status:
            conds.append(jobs.c.status.in_(self.status))
        if self.owner is not None:
            conds.append(jobs.c.owner == self.owner)
        for key, value in self.tag:
            conds.append(jobs.c.tags[key].as_string() == value)
        if self.name_contains is not None:
            conds.append(jobs.c.name.icontains(self.name_contains, autoescape=True))
        if self.created_after is not None:
            conds.append(jobs.c.created_at >= self.created_after)
        if self.created_before is not None:
            conds.append(jobs.c.created_at < self.created_before)
        if self.submission is not None:
            conds.append(jobs.c.submission == self.submission)
        return conds


@dataclass(frozen=True)
class JobPage:
    """One page of the job table: its jobs, the cursor of the next page (None: the last), and
    the jobs per status under the filter, ignoring its status part (the table's tabs)."""

    jobs: list[Job]
    next_cursor: str | None
    counts: dict[str, int]


def _sort_key(sort: str) -> tuple[str, bool]:
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    if key not in SORT_KEYS:
        raise ApiError(
            f"sort: {sort[:40]!r}: use one of {', '.join(SORT_KEYS)}, with - for descending"
        )
    return key, descending


def encode_cursor(sort: str, value: Any, job_id: int) -> str:
    """An opaque cursor: after the job ``job_id`` whose sort value is ``value``.

    >>> decode_cursor(encode_cursor("-created", 12.5, 7), "-created")
    (12.5, 7)
    """
    raw = json.dumps([sort, value, job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    """The sort value and id a cursor holds; :class:`ApiError` (400) for one that was not made
    by :func:`encode_cursor` for this ``sort``."""
    key, _ = _sort_key(sort)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, value, job_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise ApiError("cursor: not a cursor this server made (take next_cursor as is)") from None
    if made_for != sort:
        raise ApiError(f"cursor: made for sort {str(made_for)[:20]!r}, not {sort!r}")
    numeric = key in ("created", "id")
    ok_value = (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if numeric
        else isinstance(value, str)
    )
    if not ok_value or not isinstance(job_id, int) or isinstance(job_id, bool):
        raise ApiError("cursor: not a cursor this server made (take next_cursor as is)")
    if abs(job_id) > 2**62:
        raise ApiError("cursor: not a cursor this server made (take next_cursor as is)")
    return value, job_id


def page_query(
    filter: JobFilter, *, sort: str = "-created", limit: int = 50, cursor: str | None = None
) -> sa.Select[Any]:
    """The SQL of a page (``limit + 1`` rows: one more says whether a next page exists)."""
    key, descending = _sort_key(sort)
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(f"limit: {limit} is not between 1 and {MAX_LIMIT}")
    column = SORT_KEYS[key]
    query = jobs.select().where(*filter.where())
    if cursor:
        value, last_id = decode_cursor(cursor, sort)
        if key == "id":
            query = query.where(jobs.c.id < last_id if descending else jobs.c.id > last_id)
        else:
            after = sa.tuple_(column, jobs.c.id)
            bound = sa.tuple_(sa.literal(value, column.type), sa.literal(last_id))
            query = query.where(after < bound if descending else after > bound)
    order = [column.desc(), jobs.c.id.desc()] if descending else [column, jobs.c.id]
    return query.order_by(*(order[:1] if key == "id" else order)).limit(limit + 1)


def page_jobs(
    store: Store,
    filter: JobFilter,
    *,
    sort: str = "-created",
    limit: int = 50,
    cursor: str | None = None,
) -> JobPage:
    """One page of the jobs ``filter`` selects, in ``sort`` order (``created``, ``name``,
    ``status``, ``owner`` or ``id``; ``-`` first for descending), after ``cursor``. Counts
    under a tag or name filter may be :data:`COUNTS_TTL` seconds old."""
    query = page_query(filter, sort=sort, limit=limit, cursor=cursor)
    key, _ = _sort_key(sort)
    counts_query = (
        sa.select(jobs.c.status, sa.func.count())
        .where(*filter.where(with_status=False))
        .group_by(jobs.c.status)
    )
    scans = bool(filter.tag) or filter.name_contains is not None
    counts_key = (store.url, store.id, dataclasses.replace(filter, status=()))
    with _counts_lock:
        kept = _counts_kept.get(counts_key) if scans else None
    now = time.monotonic()
    with store._read() as conn:  # one read transaction: the page and the counts agree
        found = [Job.from_row(r) for r in conn.execute(query).mappings()]
        if kept is not None and now - kept[0] < COUNTS_TTL:
            counts = dict(kept[1])
        else:
            counts = {s.value: 0 for s in Status}
            counts.update({status: int(n) for status, n in conn.execute(counts_query)})
            if scans:
                with _counts_lock:
                    _counts_kept[counts_key] = (now, dict(counts))
                    while len(_counts_kept) > 256:
                        _counts_kept.popitem(last=False)
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        last = found[-1]
        values = {
            "created": last.created_at,
            "name": last.name,
            "owner": last.owner,
            "status": last.status.value,
            "id": last.id,
        }
        next_cursor = encode_cursor(sort, values[key], last.id)
    return JobPage(found, next_cursor, counts)


def job_page(store: Store, job_id: int) -> dict[str, Any]:
    """A job in full (``jobs show --json``): summary, spec, attempts, history, metrics;
    :class:`~streamfit.jobs.errors.NoSuchJob` if there is no such job."""
    job = store.get(job_id)
    return job_detail(job, store.events(job_id))
