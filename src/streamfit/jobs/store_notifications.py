"""The notifications table: what the notify step records, claims and marks."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from streamfit.jobs.records import Event, Notification
from streamfit.jobs.store_base import StoreBase
from streamfit.jobs.store_claims import Claim, insert_notifications
from streamfit.jobs.tables import events, notifications

__all__ = ["NotificationQueries"]


class NotificationQueries(StoreBase):
    """Who must be told of which event, and how far each message has got."""

    def notifications(
        self,
        *,
        status: str | None = None,
        due: float | None = None,
        job_id: int | None = None,
        limit: int | None = None,
        exclude_channels: Sequence[str] = (),
    ) -> list[Notification]:
        query = notifications.select().order_by(notifications.c.id)
        if status is not None:
            query = query.where(notifications.c.status == status)
        if exclude_channels:
            query = query.where(notifications.c.channel.not_in(list(exclude_channels)))
        if due is not None:
            query = query.where(notifications.c.next_try_at <= due)
        if job_id is not None:
            query = query.where(notifications.c.job_id == job_id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [Notification(**r) for r in conn.execute(query).mappings()]

    def mark_notification(self, note: Notification, status: str, now: float, **values: Any) -> bool:
        """Guarded change of a notification's status; False if another sender moved it."""
        result = self._transaction(
            lambda conn: conn.execute(
                notifications.update()
                .where(
                    notifications.c.id == note.id,
                    notifications.c.status == note.status,
                    notifications.c.attempts == note.attempts,
                )
                .values(status=status, **values)
            )
        )
        return result.rowcount == 1

    def claim_notification(
        self, now: float, lease_until: float, channels: Sequence[str]
    ) -> Notification | None:
        """Take the oldest due ``pending`` notification of one of ``channels`` to send:
        ``sending`` until ``lease_until``, one more attempt counted. None when there is none
        (on PostgreSQL: none that another sender is not taking at this moment)."""
        query = (
            notifications.select()
            .where(
                notifications.c.status == "pending",
                notifications.c.next_try_at <= now,
                notifications.c.channel.in_(list(channels)),
            )
            .order_by(notifications.c.id)
            .limit(1)
        )
        if self.skip_locked:
            query = query.with_for_update(skip_locked=True)

        def take(conn: Connection) -> Notification | None:
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            note = Notification(**row)
            claimed = replace(
                note, status="sending", attempts=note.attempts + 1, next_try_at=lease_until
            )
            conn.execute(
                notifications.update()
                .where(notifications.c.id == note.id)
                .values(status="sending", attempts=claimed.attempts, next_try_at=lease_until)
            )
            return claimed

        return self._transaction(take)

    def unnotified_final_events(self, limit: int = 1000) -> list[Event]:
        """Events that made a job terminal and whose notifications are not yet recorded."""
        with self._read() as conn:
            return [Event(**r) for r in conn.execute(_unnotified(limit)).mappings()]

    def claim_unnotified_final_events(
        self, limit: int = 1000
    ) -> contextlib.AbstractContextManager[Claim[Event]]:
        """The notify step's recording work: as :meth:`unnotified_final_events`, less the
        events another scheduler holds."""
        return self._claim(_unnotified(limit), lambda row: Event(**row))

    def record_notifications(
        self, event: Event, rows: Sequence[Mapping[str, Any]], now: float
    ) -> int:
        """Record ``event``'s notifications and mark it notified, in one transaction; a row
        already recorded (same key, channel, recipient) is left as it is. Returns new rows."""
        return self._transaction(lambda conn: insert_notifications(conn, event, rows, now))


def _unnotified(limit: int) -> sa.Select[Any]:
    return (
        events.select()
        .where(events.c.final.is_(True), events.c.notified.is_(False))
        .order_by(events.c.id)
        .limit(limit)
    )
