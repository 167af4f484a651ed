"""Signing in from a browser: ``GET /login`` shows a form asking for the token, ``POST /login``
checks it and sets the session cookie (what the token allows, never the token itself),
``POST /logout`` ends the session. API clients send the token as a Bearer header instead."""

from __future__ import annotations

import html
import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from streamfit.server.security import (
    CSRF_FIELD,
    Access,
    Security,
    csrf_token,
    make_session,
    safe_next,
    session_cookie,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>streamfit: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>streamfit</h1>
<form method="post" action="/login">
<p>{message}</p>
<label>Token <input type="password" name="token" autocomplete="current-password"
 required autofocus></label>
<input type="hidden" name="{csrf_field}" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form></main></body></html>
"""


def _security(request: Request) -> Security:
    security: Security = request.app.state.security
    return security


def _form(request: Request, next_url: str, message: str, status: int = 200) -> HTMLResponse:
    page = _PAGE.format(
        message=html.escape(message),
        csrf_field=CSRF_FIELD,
        csrf=html.escape(csrf_token(request)),
        next=html.escape(next_url),
    )
    return HTMLResponse(page, status_code=status, headers={"cache-control": "no-store"})


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    if _security(request).open:  # nothing to sign in to
        return RedirectResponse(safe_next(next), status_code=303)
    return _form(request, safe_next(next), "Give the server's token (read-only or write).")


@router.post("/login")
async def login(request: Request) -> Response:
    security = _security(request)
    fields = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
    next_url = safe_next((fields.get("next") or ["/"])[0])
    if security.open:
        return RedirectResponse(next_url, status_code=303)
    token = (fields.get("token") or [""])[0].strip()
    access = security.token_access(token)
    if access is Access.NONE:
        return _form(request, next_url, "That token is not valid.", status=401)
    answer = RedirectResponse(next_url, status_code=303)
    # A new session (a new nonce, so new CSRF tokens) at each sign-in: one planted before it
    # is worth nothing after.
    cookie = session_cookie(
        make_session(security.key, access), secure=request.url.scheme == "https"
    )
    answer.headers.append("set-cookie", cookie)
    return answer


@router.post("/logout")
def logout(request: Request) -> Response:
    answer = RedirectResponse("/login", status_code=303)
    cookie = session_cookie(make_session(_security(request).key, Access.NONE), secure=False)
    answer.headers.append("set-cookie", cookie)
    return answer
