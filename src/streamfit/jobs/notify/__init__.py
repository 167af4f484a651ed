"""Telling owners that their jobs have ended: email, a JSON webhook, the console.

A notifier is one method, ``send``; the notify step records who must be told of each
terminal event and sends from the store (see :mod:`streamfit.jobs.notify.step` for what is
guaranteed: at least once, with a stable id for receivers to drop duplicates).

>>> from streamfit.jobs.settings import Settings
>>> sorted(build_notifiers(Settings(home="/tmp/x")))
['console', 'webhook']
>>> sorted(build_notifiers(Settings(home="/tmp/x", smtp_host="localhost")))
['console', 'email', 'webhook']
"""

from __future__ import annotations

from streamfit.jobs.notify.base import DeliveryError, MemoryNotifier, Message, Notifier
from streamfit.jobs.notify.console import ConsoleNotifier
from streamfit.jobs.notify.email import EmailNotifier
from streamfit.jobs.notify.step import notify_step
from streamfit.jobs.notify.webhook import WebhookNotifier
from streamfit.jobs.settings import Settings

__all__ = [
    "ConsoleNotifier",
    "DeliveryError",
    "EmailNotifier",
    "MemoryNotifier",
    "Message",
    "Notifier",
    "WebhookNotifier",
    "build_notifiers",
    "notify_step",
]


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """A notifier per channel: email only with an ``smtp_host``; webhook URLs come per job."""
    notifiers: dict[str, Notifier] = {
        "webhook": WebhookNotifier(settings.webhook_timeout),
        "console": ConsoleNotifier(),
    }
    if settings.smtp_host:
        notifiers["email"] = EmailNotifier.from_settings(settings)
    return notifiers
