"""Safe by default: loopback unless a token is set, a bearer token compared in constant time,
and a Host allow-list against DNS rebinding.

A web page the user visits can make the browser post to ``http://127.0.0.1:8080``; with DNS
rebinding it can also read the answers, under a name of its own that resolves to 127.0.0.1.
The Host allow-list refuses such names. Binding another address serves the network: then
every route but ``/ping`` (the health check a load balancer makes) needs the token.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Collection, Mapping
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from streamfit.errors import ConfigError

__all__ = [
    "LOOPBACK_NAMES",
    "TOKEN_VARIABLE",
    "Guard",
    "host_name",
    "is_loopback",
    "read_token",
]

#: Where the token is read from when no ``--token-file`` is given.
TOKEN_VARIABLE = "STREAMFIT_API_TOKEN"
#: The Host names a server bound to loopback answers to.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: Shorter tokens are refused: they can be guessed.
MIN_TOKEN_LENGTH = 16
#: Routes open without the token.
_OPEN_PATHS = frozenset({"/ping"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def read_token(token_file: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The token from ``token_file``, else from ``STREAMFIT_API_TOKEN``; None if neither."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{token_file}: cannot read the token ({exc})") from exc
        where = str(token_file)
    elif environ.get(TOKEN_VARIABLE):
        token, where = environ[TOKEN_VARIABLE].strip(), TOKEN_VARIABLE
    else:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        # The token itself is never shown: only its length.
        raise ConfigError(
            f"{where}: the token has {len(token)} characters; use at least {MIN_TOKEN_LENGTH} "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def host_name(header: str) -> str:
    """The name of a Host header, without its port.

    >>> host_name("127.0.0.1:8080"), host_name("[::1]:8080"), host_name("Localhost")
    ('127.0.0.1', '::1', 'localhost')
    """
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


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
