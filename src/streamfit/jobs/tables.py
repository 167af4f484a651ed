"""The store's schema (SQLAlchemy Core). Changes go through a new migration in
``migrations/versions``; ``tests/jobs/test_store.py`` checks the two agree."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "events",
    "jobs",
    "metadata",
    "notifications",
    "share_usage",
    "store_identity",
    "submissions",
    "tuning_jobs",
    "tuning_promotions",
    "tuning_trials",
]

metadata = MetaData()

#: One row, written when the store is created: run names and backend records carry this id,
#: so a store that is reset or replaced (its job ids start again at 1) never adopts the runs
#: of the one before it.
store_identity = Table(
    "store_identity",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid4, hex
    Column("created_at", Float, nullable=False),
)

#: Times are seconds since the epoch (UTC), as floats: the same in SQLite and PostgreSQL and
#: easy to subtract for the statistics.
submissions = Table(
    "submissions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("n_jobs", Integer, nullable=False),
    Column("owner", String(320), nullable=False),
    Column("digest", JSON),  # the notify settings of a digest submission, else null
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("owner", String(320), nullable=False),
    Column("share", String(320), nullable=False),  # whose fair share it runs on
    Column("submission", String(32), ForeignKey("submissions.id"), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("final", Boolean, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("failures", JSON, nullable=False),  # failures so far, by kind
    Column("backend", String(32)),
    Column("backend_ref", String(200)),
    Column("failure_kind", String(16)),
    Column("failure_reason", Text),
    Column("stop_requested", Boolean, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("launched_at", Float),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("next_attempt_at", Float, nullable=False),
    Column("output_uri", Text),
    Column("checkpoint_uri", Text),
    Column("metrics", JSON),
    Column("tags", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    #: Its run is charged to its share up to this time; null when it holds no capacity.
    Column("charged_at", Float),
    Index("ix_jobs_due", "status", "next_attempt_at"),
    Index("ix_jobs_submission", "submission"),
    Index("ix_jobs_owner", "owner"),
    # The server's job table: each sort order with its tie-breaking id, and a status tab
    # sorted by creation (migration 0004).
    Index("ix_jobs_created", "created_at", "id"),
    Index("ix_jobs_name", "name", "id"),
    Index("ix_jobs_status_id", "status", "id"),
    Index("ix_jobs_status_created", "status", "created_at", "id"),
    Index("ix_jobs_share_queue", "status", "share", "priority", "created_at"),
    Index("ix_jobs_charged", "charged_at"),
)

#: Each share's usage (resource-seconds, decayed with the half-life) as of ``at``.
share_usage = Table(
    "share_usage",
    metadata,
    Column("share", String(320), primary_key=True),
    Column("usage", Float, nullable=False),
    Column("at", Float, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("from_status", String(16)),  # null: the job was submitted
    Column("to_status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("failure_kind", String(16)),
    Column("detail", Text),
    #: The job became terminal with this event (Completed, Stopped, Failed for good) ...
    Column("final", Boolean, nullable=False),
    #: ... and its notifications have been recorded (the notify step's own mark).
    Column("notified", Boolean, nullable=False),
    Index("ix_events_job", "job_id"),
    Index("ix_events_at", "at"),
    Index("ix_events_unnotified", "final", "notified"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),  # "event:<id>" or "digest:<submission>"
    Column("channel", String(16), nullable=False),  # email | webhook | console
    Column("recipient", Text, nullable=False),
    Column("job_id", Integer, ForeignKey("jobs.id")),
    Column("submission", String(32), ForeignKey("submissions.id")),
    Column("status", String(16), nullable=False),  # pending | sending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("next_try_at", Float, nullable=False),
    Column("sent_at", Float),
    UniqueConstraint("key", "channel", "recipient", name="uq_notification_once"),
    Index("ix_notifications_due", "status", "next_try_at"),
)

#: A tuning job: its spec, its progress, and the best trial so far. Its trials are jobs,
#: linked in ``tuning_trials``; Optuna keeps its study (``study``) in its own tables of the
#: same database. ``lease_until``: a scheduler's tuning step holds the row until then, so
#: that two schedulers never ask for trials of one tuning job at once (migration 0006 adds
#: ``leased_by``).
tuning_jobs = Table(
    "tuning_jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("owner", String(320), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # Running | Completed | Failed | Stopped
    Column("study", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("trials", Integer, nullable=False),  # submitted so far
    Column("completed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("best_trial", Integer),
    Column("best_job_id", Integer, ForeignKey("jobs.id")),
    Column("best_value", Float),
    Column("best_params", JSON),
    Column("stop_requested", Boolean, nullable=False),
    Column("lease_until", Float),
    Column("version", Integer, nullable=False),
    #: The lease holder, ``host:pid``: a dead process's lease on this host is taken at once.
    Column("leased_by", String(300)),
    Index("ix_tuning_jobs_status", "status"),
)

#: Which job runs which trial (Optuna's trial number) of a tuning job.
tuning_trials = Table(
    "tuning_trials",
    metadata,
    Column("tuning_id", Integer, ForeignKey("tuning_jobs.id"), primary_key=True),
    Column("trial", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, unique=True),
)

#: The jobs that resume a multi-fidelity trial at its later rungs (1, 2, ...), each from the
#: checkpoint of the job before it.
tuning_promotions = Table(
    "tuning_promotions",
    metadata,
    Column("tuning_id", Integer, ForeignKey("tuning_jobs.id"), primary_key=True),
    Column("trial", Integer, primary_key=True),
    Column("rung", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, unique=True),
)
