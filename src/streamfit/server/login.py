"""Signing in from a browser: ``GET /login`` shows a form asking for the token, ``POST /login``
checks it and sets the session cookie (what the token allows, never the token itself),
``POST /logout`` ends the session. API clients send the token as a Bearer header instead."""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from streamfit.server.pages import page_context, render
from streamfit.server.security import (
    CSRF_FIELD,
    Access,
    Security,
    make_session,
    safe_next,
    session_cookie,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _security(request: Request) -> Security:
    security: Security = request.app.state.security
    return security


def _form(request: Request, next_url: str, message: str, status: int = 200) -> HTMLResponse:
    """The dashboard's frame around the form (its stylesheet; no inline style or script)."""
    context = page_context(request, "login", message=message, csrf_field=CSRF_FIELD, next=next_url)
    page = render("login.html", context, status)
    page.headers["cache-control"] = "no-store"
    return page


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
