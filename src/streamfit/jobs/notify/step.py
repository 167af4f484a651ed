"""The notify step: record who must be told of each job's end, then tell them.

1. **Record.** For each final event (Completed, Stopped, Failed for good) not yet marked
   notified, one ``pending`` row per channel and recipient of the job's ``notify`` spec, if
   its status is in ``notify.on`` (key ``event:<event id>``). A job of a digest submission
   gets no rows of its own: once every job of the submission is terminal, the submission
   gets one row per channel and recipient of the digest's spec (key ``digest:<submission>``).
   The rows and the event's mark are written in one transaction, with insert-or-ignore on
   (key, channel, recipient): a crash only delays them, and two passes or two schedulers
   record each row once. The last job of a submission to end is seen terminal by whoever
   reads its event (that event was committed with the job's change), so a digest is never
   missed; a job retried by hand after its digest has gone out gets no second digest.
2. **Send.** Each due ``pending`` row is claimed (``pending -> sending`` in one transaction
   that also counts the attempt; on PostgreSQL with ``SKIP LOCKED``, so that senders beside
   this one take other rows), sent, then marked ``sent``. A failure puts it back to
   ``pending`` with the (scrubbed) error and an exponential backoff (5 s, doubling, at most
   10 min); after ``max_attempts`` it is ``failed``. A channel with no notifier (email with
   no ``smtp_host``) leaves its rows ``pending``, saying why, until one is configured.

**Delivery is at least once, not exactly once.** The claim makes sure that two senders never
send one row and that a row marked sent is never sent again. But a sender that dies after the
server took the message and before the row is marked sent leaves it ``sending``; once the
claim's lease (5 minutes) has run out the row goes back to ``pending`` and is sent again.
Every resend carries the same id (the email's ``Message-ID``, the webhook's
``Idempotency-Key``), so a receiver can drop that rare duplicate; neither SMTP nor a plain
webhook offers more.

The scheduler runs this step (:mod:`streamfit.jobs.manager` shows one at work).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from streamfit.jobs.backoff import compute_backoff
from streamfit.jobs.context import StepContext
from streamfit.jobs.notify.base import DeliveryError, Message, Notifier, truncate
from streamfit.jobs.notify.messages import Content, digest_content, job_content
from streamfit.jobs.spec import NotifySpec
from streamfit.jobs.store import Event, Job, Notification, Store

__all__ = ["message_id", "notify_step", "record_step", "send_step"]

log = logging.getLogger(__name__)

BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 600.0
#: How long a claimed row may stay ``sending`` before it is taken to have been abandoned.
LEASE_SECONDS = 300.0
#: How often a row waiting for an unconfigured channel is looked at again.
UNCONFIGURED_RECHECK_SECONDS = 60.0
_ERROR_CHARS = 500


def notify_step(
    ctx: StepContext,
    notifiers: Mapping[str, Notifier],
    *,
    max_attempts: int = 20,
    lease_seconds: float = LEASE_SECONDS,
    limit: int = 500,
) -> int:
    """One pass; returns the number of notifications recorded plus those sent."""
    recorded = record_step(ctx)
    sent = send_step(
        ctx, notifiers, max_attempts=max_attempts, lease_seconds=lease_seconds, limit=limit
    )
    return recorded + sent


# -- recording ---------------------------------------------------------------------------


def record_step(ctx: StepContext) -> int:
    """Record the rows of every unnotified final event; returns the rows added."""
    store, now = ctx.store, ctx.clock.now()
    digests: dict[str, NotifySpec | None] = {}
    # A submission's jobs once all are terminal (None: not yet). Caching it for the pass is
    # sound: every event listed was committed before the jobs are read.
    ended: dict[str, list[Job] | None] = {}
    added = 0
    # On PostgreSQL the events stay locked until their rows are recorded: schedulers beside
    # this one record other events instead of the same ones again.
    with store.claim_unnotified_final_events() as claim:
        for event in claim.items:
            job = store.get(event.job_id)
            sub = job.submission
            if sub not in digests:
                digests[sub] = _digest_spec(store, sub)
            digest = digests[sub]
            if digest is None:
                rows = _job_rows(event, job)
            else:
                if sub not in ended:
                    jobs = store.submission_jobs(sub)
                    ended[sub] = jobs if all(j.is_terminal for j in jobs) else None
                rows = _digest_rows(sub, digest, ended[sub])
            added += claim.record_notifications(event, rows, now)
    return added


def _targets(spec: NotifySpec) -> list[tuple[str, str]]:
    out = [("email", address) for address in dict.fromkeys(spec.email)]
    if spec.webhook:
        out.append(("webhook", spec.webhook))
    if spec.console:
        out.append(("console", "console"))
    return out


def _job_rows(event: Event, job: Job) -> list[dict[str, Any]]:
    spec = NotifySpec.model_validate(job.spec.get("notify") or {})
    if event.to_status.lower() not in spec.on:
        return []
    return [
        {
            "key": f"event:{event.id}",
            "channel": channel,
            "recipient": recipient,
            "job_id": job.id,
            "submission": job.submission,
        }
        for channel, recipient in _targets(spec)
    ]


def _digest_rows(sub: str, spec: NotifySpec, jobs: list[Job] | None) -> list[dict[str, Any]]:
    if jobs is None or not any(j.status.value.lower() in spec.on for j in jobs):
        return []
    return [
        {"key": f"digest:{sub}", "channel": channel, "recipient": recipient, "submission": sub}
        for channel, recipient in _targets(spec)
    ]


def _digest_spec(store: Store, submission: str) -> NotifySpec | None:
    """The digest settings of ``submission``; None if it is not a digest submission."""
    value = store.submission_digest(submission)
    return None if value is None else NotifySpec.model_validate(value)


# -- sending -----------------------------------------------------------------------------


def message_id(note: Notification) -> str:
    """The notification's idempotency key: the same on every resend. The submission (random)
    keeps two stores' row ids apart at a receiver that drops duplicates by id."""
    base = f"streamfit-notification-{note.id}"
    return f"{base}-{note.submission}" if note.submission else base


def send_step(
    ctx: StepContext,
    notifiers: Mapping[str, Notifier],
    *,
    max_attempts: int = 20,
    lease_seconds: float = LEASE_SECONDS,
    limit: int = 500,
) -> int:
    """Send the due pending rows; returns the number sent."""
    store = ctx.store
    _reclaim(store, ctx.clock.now(), max_attempts, limit)
    for note in store.notifications(
        status="pending", due=ctx.clock.now(), limit=limit, exclude_channels=list(notifiers)
    ):
        _unconfigured(store, note, ctx.clock.now())
    contents: dict[str, Content] = {}
    sent = 0
    for _ in range(limit):
        # One row at a time, each claimed just before it is sent, so its lease starts then.
        now = ctx.clock.now()
        claimed = store.claim_notification(now, now + lease_seconds, list(notifiers))
        if claimed is None:
            break
        notifier = notifiers[claimed.channel]
        try:
            notifier.send(_message(store, claimed, contents))
        except Exception as exc:  # any failure of any notifier: retried later
            _failed(ctx, notifier, claimed, exc, max_attempts)
            continue
        sent += 1
        if store.mark_notification(claimed, "sent", ctx.clock.now(), sent_at=ctx.clock.now()):
            log.info("notification %d sent (%s)", claimed.id, claimed.channel)
        else:  # the lease ran out mid-send and the row was taken back: it may go twice
            log.warning("notification %d sent after its claim had expired", claimed.id)
    return sent


def _message(store: Store, note: Notification, contents: dict[str, Content]) -> Message:
    content = contents.get(note.key)
    if content is None:
        content = contents[note.key] = _compose(store, note)
    mid = message_id(note)
    payload = {**content.payload, "notification_id": mid}
    return Message(mid, note.recipient, content.subject, content.text, payload)


def _compose(store: Store, note: Notification) -> Content:
    kind, _, ref = note.key.partition(":")
    if kind == "digest":
        return digest_content(ref, store.submission_jobs(ref))
    if kind == "tuning":  # a tuning job's digest, recorded by the tuning step when it ended
        from streamfit.jobs.tuning import Tunings, digest

        tunings = Tunings(store)
        tuning = tunings.get(int(ref))
        return Content(*digest(tuning, tunings.rungs(tuning.id)))
    if note.job_id is None:
        raise ValueError(f"notification {note.id} ({note.key}) names no job")
    job = store.get(note.job_id)
    event = next((e for e in store.events(job_id=job.id) if str(e.id) == ref), None)
    return job_content(job, event)


def _failed(
    ctx: StepContext, notifier: Notifier, note: Notification, exc: Exception, max_attempts: int
) -> None:
    error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
    scrub = getattr(notifier, "scrub", None)
    if callable(scrub):
        error = str(scrub(error))
    error = truncate(" ".join(error.split()), _ERROR_CHARS)
    now = ctx.clock.now()
    if note.attempts >= max_attempts:
        ctx.store.mark_notification(note, "failed", now, last_error=error)
        log.error("notification %d (%s) failed for good: %s", note.id, note.channel, error)
        return
    delay = compute_backoff(note.attempts, BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, rand=ctx.rand)
    ctx.store.mark_notification(note, "pending", now, last_error=error, next_try_at=now + delay)
    log.warning(
        "notification %d (%s) failed, attempt %d of %d, next in %.0f s: %s",
        note.id,
        note.channel,
        note.attempts,
        max_attempts,
        delay,
        error,
    )


def _unconfigured(store: Store, note: Notification, now: float) -> None:
    if note.channel == "email":
        why = "no email notifier: set smtp_host (STREAMFIT_SMTP_HOST) to send email"
    else:
        why = f"no {note.channel} notifier configured"
    store.mark_notification(
        note, "pending", now, last_error=why, next_try_at=now + UNCONFIGURED_RECHECK_SECONDS
    )
    if note.last_error != why:
        log.warning("notification %d waits: %s", note.id, why)


def _reclaim(store: Store, now: float, max_attempts: int, limit: int) -> None:
    """Rows whose sender's claim has run out (it crashed mid-send) go back to pending."""
    for note in store.notifications(status="sending", due=now, limit=limit):
        status = "pending" if note.attempts < max_attempts else "failed"
        why = "the sender stopped while sending (a crash?): sent again, perhaps twice"
        if store.mark_notification(note, status, now, last_error=why, next_try_at=now):
            log.warning("notification %d taken back: %s", note.id, why)
