"""Safe by default: the job server answers only this machine unless a token is set, and then
only those who hold it. Its API can run commands (``POST /api/jobs``), so an unauthenticated
one would be what Ray's job API was (CVE-2023-48022).

- **Tokens.** A write token (``STREAMFIT_API_TOKEN`` or ``--token-file``) allows everything;
  a read token (``STREAMFIT_API_READ_TOKEN`` or ``--read-token-file``) allows what does not
  change anything (GET). Binding an address other than loopback requires one. Without either,
  on loopback, everything is allowed, as the CLI allows it. Compared in constant time.
- **Who sends them.** API clients send ``Authorization: Bearer <token>``. A browser signs in
  once at ``/login`` and then holds a session cookie (HMAC-signed, HttpOnly,
  SameSite=Strict) that says what its token allowed; the token itself is never stored.
- **Cross-site requests.** Every state-changing request (POST, PUT, PATCH, DELETE) whose
  Origin (or Referer) names another site is refused, and one that is not authorised by a
  Bearer header must carry the session's CSRF token (:func:`csrf_token`), as the form field
  ``csrf_token`` or the header ``X-CSRF-Token``.
- **DNS rebinding.** A Host outside the allow-list is refused (421).
- **Content-Security-Policy.** :data:`CSP`: the app's own scripts, styles and images only;
  no inline script, no CDN, no framing.

Secrets (tokens, the cookie key, CSRF tokens) are never logged nor put in a message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from http.cookies import SimpleCookie
from pathlib import Path

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamfit.access import LOOPBACK_NAMES, TOKEN_VARIABLE, host_name, is_loopback, read_token
from streamfit.errors import ConfigError

__all__ = [
    "COOKIE",
    "CSP",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "MAX_BODY_BYTES",
    "READ_TOKEN_VARIABLE",
    "Access",
    "Guard",
    "Security",
    "access_of",
    "csrf_token",
    "load_security",
    "make_session",
    "read_session",
    "safe_next",
    "session_cookie",
]

#: Where the read-only token is read from when no ``--read-token-file`` is given.
READ_TOKEN_VARIABLE = "STREAMFIT_API_READ_TOKEN"
#: The session cookie's name.
COOKIE = "streamfit_session"
#: Where a form (field) or a script (header) sends the CSRF token.
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: The app's own assets only: no inline script or style element, nothing from elsewhere.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: A browser session lasts this long before its token must be given again.
SESSION_SECONDS = 12 * 3600
#: Paths open to anyone (the Host and cross-site checks still apply), and folders of them.
_OPEN = frozenset({"/login", "/logout"})
_OPEN_FOLDERS = ("/static/",)
#: Request bodies are refused past this size (a spec file's own limit, for POST /api/jobs).
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Form bodies read for their CSRF field are refused past this size.
_MAX_FORM_BYTES = 1 << 20
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class Access(IntEnum):
    """What a request may do; each level allows the ones below it."""

    NONE = 0
    READ = 1  # what changes nothing: GET, HEAD
    WRITE = 2  # everything: submit, stop, retry


@dataclass(frozen=True)
class Security:
    """The server's security settings (:func:`load_security` reads them)."""

    #: The token that allows everything, and the one that allows reading; None: not set.
    write_token: str | None = field(default=None, repr=False)
    read_token: str | None = field(default=None, repr=False)
    #: Host names served (None: any, for a server behind a proxy that knows its names).
    allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES
    #: Signs the session cookies and CSRF tokens: new for each server process.
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @property
    def open(self) -> bool:
        """No token set: everyone who reaches the server may do everything (loopback)."""
        return self.write_token is None and self.read_token is None

    def token_access(self, token: str) -> Access:
        """What ``token`` allows (both compared, in constant time)."""
        given = token.encode()
        write = self.write_token is not None and secrets.compare_digest(
            given, self.write_token.encode()
        )
        read = self.read_token is not None and secrets.compare_digest(
            given, self.read_token.encode()
        )
        return Access.WRITE if write else Access.READ if read else Access.NONE


def load_security(
    host: str,
    *,
    token_file: Path | None = None,
    read_token_file: Path | None = None,
    allow_hosts: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Security:
    """The settings for a server bound to ``host``: tokens from the files, else from
    ``STREAMFIT_API_TOKEN`` and ``STREAMFIT_API_READ_TOKEN``; another address than loopback
    without a token is a :class:`ConfigError`. ``allow_hosts`` adds Host names to serve.

    >>> load_security("0.0.0.0", environ={})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamfit.errors.ConfigError: --host 0.0.0.0 serves the network: set STREAMFIT_API_TOKEN ...
    """
    import os

    env = os.environ if environ is None else environ
    write = read_token(token_file, env, TOKEN_VARIABLE)
    read = read_token(read_token_file, env, READ_TOKEN_VARIABLE)
    if write is not None and read is not None and write == read:
        raise ConfigError("the read-only token and the write token must differ")
    loopback = is_loopback(host)
    if not loopback and write is None and read is None:
        raise ConfigError(
            f"--host {host} serves the network: set {TOKEN_VARIABLE} or --token-file (and "
            f"{READ_TOKEN_VARIABLE} or --read-token-file for read-only access)"
        )
    names = {h.strip().lower() for h in allow_hosts if h.strip()}
    # On loopback, only loopback names (DNS rebinding); bound to the network, the names
    # given, else any (the token guards it).
    hosts = frozenset(LOOPBACK_NAMES | names) if loopback else frozenset(names) or None
    return Security(write_token=write, read_token=read, allowed_hosts=hosts)


# -- sessions -----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, purpose: str, text: str) -> str:
    return _b64(hmac.new(key, f"{purpose}|{text}".encode(), hashlib.sha256).digest())


def make_session(key: bytes, access: Access, now: float | None = None) -> str:
    """A signed session cookie's value: a fresh nonce, the access it grants, its expiry."""
    expires = int((time.time() if now is None else now) + SESSION_SECONDS)
    body = _b64(json.dumps([secrets.token_urlsafe(16), int(access), expires]).encode())
    return f"{body}.{_sign(key, 'session', body)}"


def read_session(key: bytes, value: str, now: float | None = None) -> tuple[str, Access] | None:
    """The nonce and access of a cookie :func:`make_session` made with ``key``; None for a
    forged, altered or expired one.

    >>> key = b"k" * 32
    >>> read_session(key, make_session(key, Access.READ))[1]
    <Access.READ: 1>
    >>> read_session(key, make_session(b"x" * 32, Access.WRITE)) is None
    True
    """
    body, _, mac = value.partition(".")
    if not hmac.compare_digest(mac.encode(), _sign(key, "session", body).encode()):
        return None
    try:
        nonce, access, expires = json.loads(_unb64(body))
        granted = Access(access)
    except (ValueError, TypeError):
        return None
    if not isinstance(nonce, str) or expires < (time.time() if now is None else now):
        return None
    return nonce, granted


@dataclass
class _Session:
    """A request's session (in ``scope``): the cookie's, or one made for this response."""

    nonce: str
    access: Access
    cookie: str | None = None  # set: a new cookie to send


def csrf_token(request: HTTPConnection) -> str:
    """The CSRF token of the request's session, for a form's hidden ``csrf_token`` field (or
    a script's ``X-CSRF-Token`` header): every state-changing request from a browser needs
    it. Only :class:`Guard` makes sessions: outside it this raises ``RuntimeError``."""
    session = request.scope.get("streamfit.session")
    if not isinstance(session, _Session):
        raise RuntimeError("csrf_token needs the server's Guard middleware (create_app adds it)")
    return _sign(request.app.state.security.key, "csrf", session.nonce)


def access_of(request: HTTPConnection) -> Access:
    """What the request may do (for pages that show a button only to those who may press
    it)."""
    value = request.scope.get("streamfit.access", Access.NONE)
    return value if isinstance(value, Access) else Access.NONE


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site.

    >>> safe_next("/jobs/4?x=1"), safe_next("//evil.example/"), safe_next("https://e.x/")
    ('/jobs/4?x=1', '/', '/')
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


# -- the middleware -------------------------------------------------------------------------------


class Guard:
    """ASGI middleware enforcing :class:`Security` (see the module docstring), and adding the
    security headers to every answer."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        sec = self.security
        host = headers.get("host", "")
        if sec.allowed_hosts is not None and host_name(host) not in sec.allowed_hosts:
            await _refuse(send, 421, f"host {host_name(host)[:100]!r} is not served here")
            return
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            await _refuse(send, 413, f"a request body holds at most {MAX_BODY_BYTES:,} bytes")
            return
        session = self._session(headers)
        scope["streamfit.session"] = session
        # The API's clients need no cookie; a page sets one for its forms' CSRF tokens.
        send = _with_headers(
            send,
            session,
            new_cookie=not scope["path"].startswith("/api/"),
            secure=scope.get("scheme") == "https",
        )
        method = scope["method"].upper()
        path = scope["path"]
        changing = method not in _SAFE_METHODS
        if changing and not _same_origin(headers, scope, host):
            await _refuse(send, 403, "a request from another site (its Origin) is refused")
            return

        bearer = _bearer(headers)
        if sec.open:
            access = Access.WRITE
        elif bearer is not None:
            access = sec.token_access(bearer)
            if access is Access.NONE:
                await _refuse(send, 401, "the bearer token is not valid", bearer=True)
                return
        else:
            access = session.access
        scope["streamfit.access"] = access

        # Cross-site forgery needs a browser: one that holds the session cookie, or posts a
        # form. An API client that sends neither (curl on loopback) has nothing to forge.
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        browser = session.cookie is None or content_type in _FORM_TYPES
        if changing and bearer is None and browser:
            receive, token = await _csrf_sent(headers, content_type, receive)
            expected = _sign(sec.key, "csrf", session.nonce)
            if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
                await _refuse(
                    send,
                    403,
                    "the CSRF token is missing or not valid: reload the page and try again",
                )
                return

        if path not in _OPEN and not path.startswith(_OPEN_FOLDERS):
            needed = Access.READ if not changing else Access.WRITE
            if access < needed:
                if access is Access.NONE:
                    if not path.startswith("/api/") and method in ("GET", "HEAD"):
                        query = scope["query_string"].decode("latin-1")
                        target = path + (f"?{query}" if query else "")
                        await _redirect(send, "/login?next=" + urllib.parse.quote(target, ""))
                        return
                    await _refuse(send, 401, "a token is required: sign in", bearer=True)
                    return
                await _refuse(send, 403, "this token allows reading only")
                return
        await self.app(scope, receive, send)

    def _session(self, headers: Mapping[str, str]) -> _Session:
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no session, not an error
            cookie = SimpleCookie()
        morsel = cookie.get(COOKIE)
        found = read_session(self.security.key, morsel.value) if morsel is not None else None
        if found is not None:
            return _Session(*found)
        value = make_session(self.security.key, Access.NONE)
        nonce, access = read_session(self.security.key, value) or ("", Access.NONE)
        return _Session(nonce, access, cookie=value)


def session_cookie(value: str, *, secure: bool, max_age: int = SESSION_SECONDS) -> str:
    """A ``Set-Cookie`` value for the session: HttpOnly, SameSite=Strict, whole site."""
    parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Strict", f"Max-Age={max_age}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def _with_headers(send: Send, session: _Session, *, new_cookie: bool, secure: bool) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {k.lower() for k, _ in headers}
            extra = {
                b"content-security-policy": CSP.encode(),
                b"x-content-type-options": b"nosniff",
                b"x-frame-options": b"DENY",
                b"referrer-policy": b"same-origin",
            }
            headers += [(k, v) for k, v in extra.items() if k not in names]
            if new_cookie and session.cookie is not None and not _sets_session(headers):
                cookie = session_cookie(session.cookie, secure=secure)
                headers.append((b"set-cookie", cookie.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return sending


def _sets_session(headers: list[tuple[bytes, bytes]]) -> bool:
    prefix = f"{COOKIE}=".encode()
    return any(k.lower() == b"set-cookie" and v.startswith(prefix) for k, v in headers)


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _same_origin(headers: Mapping[str, str], scope: Scope, host: str) -> bool:
    """Whether a state-changing request comes from this server's own pages (or from no page:
    an API client sends no Origin)."""
    origin = headers.get("origin")
    if origin is None:
        referer = headers.get("referer")
        if referer is None:
            return True
        parsed = urllib.parse.urlsplit(referer)
        origin = f"{parsed.scheme}://{parsed.netloc}"
    if origin == "null":  # a sandboxed frame, a file: page, a redirect across sites
        return False
    parsed = urllib.parse.urlsplit(origin)
    scheme = scope.get("scheme", "http")
    return parsed.netloc.lower() == host.lower() and parsed.scheme in (scheme, "http", "https")


async def _csrf_sent(
    headers: Mapping[str, str], content_type: str, receive: Receive
) -> tuple[Receive, str | None]:
    """The CSRF token the request sends (header, else form field), and a ``receive`` that
    gives the application the body again if it had to be read for the field."""
    token = headers.get(CSRF_HEADER)
    if token is not None:
        return receive, token
    if content_type != _FORM_TYPES[0]:
        return receive, None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_FORM_BYTES:
            return receive, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    fields = urllib.parse.parse_qs(body.decode("latin-1"), max_num_fields=100)
    values = fields.get(CSRF_FIELD)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay, values[0] if values else None


async def _refuse(send: Send, status: int, message: str, bearer: bool = False) -> None:
    body = json.dumps({"detail": message}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
