"""A JSON webhook (``urllib.request``): a Slack-compatible ``text`` plus structured fields.

Each POST carries an ``Idempotency-Key`` header, the same on every resend of one notification.
Any answer other than 2xx is a failure (redirects are not followed: a POST turned into a GET
would lose the payload). The URL is the recipient and may itself be a secret (Slack's are),
so errors never repeat it.

>>> WebhookNotifier().body(Message("n-1", "https://hooks.example.com/x", "s", "job 1 done",
...                                {"job_id": 1}))
b'{"text": "job 1 done", "job_id": 1}'
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from streamfit.jobs.notify.base import DeliveryError, Message, truncate

__all__ = ["WebhookNotifier"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError for the 3xx answer


_opener = urllib.request.build_opener(_NoRedirect)


class WebhookNotifier:
    channel = "webhook"

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def body(self, message: Message) -> bytes:
        return json.dumps({"text": message.text, **message.payload}, default=str).encode()

    def send(self, message: Message) -> None:
        url = message.recipient
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryError("the webhook is not an http(s) URL")
        request = urllib.request.Request(
            url,
            data=self.body(message),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": message.id,
                "User-Agent": "streamfit-notify",
            },
        )
        where = f"webhook at {parts.hostname}"
        try:
            with _opener.open(request, timeout=self.timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
            reason = getattr(exc, "reason", exc)
            error = f"{where}: {type(exc).__name__}: {reason}".replace(url, "<url>")
            raise DeliveryError(truncate(error, 1000)) from None
        if not 200 <= status < 300:
            raise DeliveryError(f"{where} answered HTTP {status}")
