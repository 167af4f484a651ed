"""The console: one line per message, to stderr by default (the demo; ``console: true``).

>>> import io
>>> out = io.StringIO()
>>> ConsoleNotifier(out).send(Message("n-1", "console", "job 1 'a' Completed", "details"))
>>> out.getvalue()
"[streamfit] job 1 'a' Completed\\n"
"""

from __future__ import annotations

import sys
from typing import TextIO

from streamfit.jobs.notify.base import Message

__all__ = ["ConsoleNotifier"]


class ConsoleNotifier:
    channel = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream  # None: sys.stderr at the time of sending

    def send(self, message: Message) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        line = " ".join(message.subject.split())  # one line, whatever the subject holds
        print(f"[streamfit] {line}", file=stream, flush=True)
