"""What a notifier is: a ``channel`` name and one method, ``send``, that raises on failure.

>>> msg = Message("streamfit-notification-7", "alice@example.com", "job 7 Completed", "...")
>>> msg.payload
{}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from streamfit.jobs.errors import DeliveryError

__all__ = ["DeliveryError", "MemoryNotifier", "Message", "Notifier", "truncate"]


@dataclass(frozen=True)
class Message:
    """One notification to one recipient."""

    #: Stable idempotency key: the same on every resend of one notification, so that a
    #: receiver can drop duplicates (email ``Message-ID``, webhook ``Idempotency-Key``).
    id: str
    recipient: str
    subject: str
    text: str
    #: Structured fields for webhooks (the Slack-compatible ``text`` is added by the sender).
    payload: dict[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    channel: str

    def send(self, message: Message) -> None:
        """Deliver ``message`` or raise (any exception: the notify step retries later)."""
        ...


class MemoryNotifier:
    """The in-memory fake: keeps what it is sent; ``fail`` makes the next sends raise.

    >>> fake = MemoryNotifier("email"); fake.send(Message("n-1", "a@example.com", "s", "t"))
    >>> [m.id for m in fake.sent]
    ['n-1']
    """

    def __init__(self, channel: str, fail: int = 0) -> None:
        self.channel = channel
        self.fail = fail
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise DeliveryError(f"{self.channel}: refused (a fake failure)")
        self.sent.append(message)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked when cut.

    >>> truncate("abcdefghij", 8)
    'abcde...'
    """
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."
