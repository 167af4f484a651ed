"""Email over SMTP (``smtplib``): optional STARTTLS and login, one connection per message.

The ``Message-ID`` header comes from the notification's id, so every resend of one
notification carries the same one and a receiver can drop the duplicate. The password never
leaves this module: errors are re-raised as :class:`DeliveryError` with it (and its base64
forms, as sent by AUTH PLAIN and LOGIN) scrubbed out, and without the original exception
attached.

>>> notifier = EmailNotifier("smtp.example.com", 587, "jobs@example.com", starttls=True)
>>> notifier.message_id(Message("streamfit-notification-7", "a@example.com", "s", "t"))
'<streamfit-notification-7@example.com>'
"""

from __future__ import annotations

import base64
import smtplib
import ssl
from email.message import EmailMessage
from email.policy import default as _default_policy
from email.utils import formatdate

from pydantic import SecretStr

from streamfit.jobs.notify.base import DeliveryError, Message, truncate
from streamfit.jobs.settings import Settings

__all__ = ["EmailNotifier"]

_REDACTED = "[redacted]"
# Headers up to RFC 5322's hard limit on one line: Python's folding of a long subject leaves a
# leading space in it for some readers.
_POLICY = _default_policy.clone(max_line_length=998)


class EmailNotifier:
    channel = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        sender: str = "streamfit@localhost",
        *,
        starttls: bool = False,
        user: str | None = None,
        password: SecretStr | None = None,
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.user, self.timeout = starttls, user, timeout
        self._password = password
        self._tls_context = tls_context

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailNotifier:
        if settings.smtp_host is None:
            raise ValueError("no smtp_host in the settings")
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            starttls=settings.smtp_starttls,
            user=settings.smtp_user,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout,
        )

    def __repr__(self) -> str:
        return f"EmailNotifier({self.host!r}, {self.port}, {self.sender!r}, user={self.user!r})"

    def message_id(self, message: Message) -> str:
        domain = self.sender.rpartition("@")[2] or "streamfit.invalid"
        return f"<{message.id}@{domain}>"

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage(policy=_POLICY)
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = self.message_id(message)
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
        mail.set_content(message.text)
        return mail

    def send(self, message: Message) -> None:
        mail = self.compose(message)
        try:
            self._deliver(mail)
            return
        except Exception as exc:  # anything may carry the password: scrub, then drop it
            error = self.scrub(f"{type(exc).__name__}: {exc}")
        # Raised outside the handler so that the original exception is not its context.
        raise DeliveryError(f"SMTP {self.host}:{self.port}: {truncate(error, 1000)}")

    def _deliver(self, mail: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=self._tls_context or ssl.create_default_context())
            if self.user is not None and self._password is not None:
                smtp.login(self.user, self._password.get_secret_value())
            smtp.send_message(mail)

    def scrub(self, text: str) -> str:
        """``text`` without the password in any form we send it in."""
        if self._password is None:
            return text
        secret = self._password.get_secret_value()
        if not secret:
            return text
        forms = {secret, repr(secret)[1:-1]}
        for raw in (secret, f"\0{self.user or ''}\0{secret}"):
            encoded = base64.b64encode(raw.encode("utf-8", "replace")).decode("ascii")
            forms.update({encoded, encoded.rstrip("=")})
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, _REDACTED)
        return text
