"""Safe by default: loopback unless a token is set, a bearer token compared in constant time,
and a Host allow-list against DNS rebinding.

A web page the user visits can make the browser post to ``http://127.0.0.1:8080``; with DNS
rebinding it can also read the answers, under a name of its own that resolves to 127.0.0.1.
The Host allow-list refuses such names. Binding another address serves the network: then
every route but ``/ping`` (the health check a load balancer makes) needs the token.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

# Shared with the job server (streamfit.server), which must not import this package (PyTorch).
from streamfit.access import (
    LOOPBACK_NAMES,
    MIN_TOKEN_LENGTH,
    TOKEN_VARIABLE,
    host_name,
    is_loopback,
    read_token,
)

__all__ = [
    "LOOPBACK_NAMES",
    "MIN_TOKEN_LENGTH",
    "TOKEN_VARIABLE",
    "Guard",
    "host_name",
    "is_loopback",
    "read_token",
]

#: Routes open without the token.
_OPEN_PATHS = frozenset({"/ping"})


class Guard:
    """ASGI middleware: refuses a Host outside ``allowed_hosts`` (None: any) with 421 and,
    when ``token`` is set, a request without ``Authorization: Bearer <token>`` with 401."""

    def __init__(
        self, app: ASGIApp, token: str | None, allowed_hosts: Collection[str] | None
    ) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None
        self.allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.allowed_hosts is not None:
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed_hosts:
                await _refuse(send, 421, f"host {host!r} is not served here")
                return
        if self.token is not None and scope["path"] not in _OPEN_PATHS:
            scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not secrets.compare_digest(given.strip(), self.token):
                await _refuse(send, 401, "a valid bearer token is required", bearer=True)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, message: str, bearer: bool = False) -> None:
    body = json.dumps({"error": message}, separators=(",", ":")).encode()  # as JSONResponse
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
