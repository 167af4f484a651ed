"""Safe by default: loopback without a token, tokens (read and write) otherwise, a browser
session cookie, CSRF and Origin checks on every change, a Host allow-list, a strict CSP, and
no secret in any log."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from streamfit.errors import ConfigError
from streamfit.jobs.manager import JobManager
from streamfit.server.security import (
    CSP,
    MAX_BODY_BYTES,
    Access,
    Security,
    load_security,
    make_session,
    read_session,
    safe_next,
)
from tests.server.conftest import BASE_URL, client_of, python_job

WRITE = "write-token-0123456789abcdef"
READ = "read-token-0123456789abcdef"


@pytest.fixture
def guarded(sqlite_manager: JobManager) -> Iterator[TestClient]:
    """The application with a write and a read token, as if bound to the network."""
    security = Security(write_token=WRITE, read_token=READ, allowed_hosts=None)
    with client_of(sqlite_manager, security) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, page
    return match[1]


# -- settings -----------------------------------------------------------------------------------


def test_another_address_than_loopback_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="serves the network: set STREAMFIT_API_TOKEN"):
        load_security("0.0.0.0", environ={})
    assert load_security("127.0.0.1", environ={}).open
    read_file = tmp_path / "read"
    read_file.write_text(READ + "\n")
    security = load_security(
        "0.0.0.0",
        read_token_file=read_file,
        environ={"STREAMFIT_API_TOKEN": WRITE},
        allow_hosts=["Jobs.Example.com"],
    )
    assert (security.write_token, security.read_token) == (WRITE, READ)
    assert security.allowed_hosts == frozenset({"jobs.example.com"})
    assert load_security("0.0.0.0", environ={"STREAMFIT_API_TOKEN": WRITE}).allowed_hosts is None
    assert WRITE not in repr(security) and READ not in repr(security)


def test_short_or_shared_tokens_are_refused_without_showing_them() -> None:
    with pytest.raises(ConfigError, match="the token has 5 characters") as short:
        load_security("127.0.0.1", environ={"STREAMFIT_API_READ_TOKEN": "abcde"})
    assert "abcde" not in str(short.value)
    with pytest.raises(ConfigError, match="must differ") as same:
        load_security(
            "127.0.0.1",
            environ={"STREAMFIT_API_TOKEN": WRITE, "STREAMFIT_API_READ_TOKEN": WRITE},
        )
    assert WRITE not in str(same.value)


# -- loopback, no token ---------------------------------------------------------------------------


def test_loopback_without_a_token_allows_everything_from_this_machine(
    sqlite_manager: JobManager,
) -> None:
    [job_id] = sqlite_manager.submit([python_job("a")]).job_ids
    with client_of(sqlite_manager) as c:
        assert c.get("/api/jobs").status_code == 200
        # an API client (no cookie, no Origin) needs no CSRF token
        assert c.post(f"/api/jobs/{job_id}/stop", headers={"cookie": ""}).status_code == 200


def test_a_host_outside_the_allow_list_is_refused(sqlite_manager: JobManager) -> None:
    with client_of(sqlite_manager) as c:
        for host in ("evil.example", "127.0.0.1.nip.io", "localhost.evil.example:8000"):
            answer = c.get("/api/jobs", headers={"host": host})
            assert answer.status_code == 421, host
        assert c.get("/api/jobs", headers={"host": "localhost:8000"}).status_code == 200
        assert c.get("/api/jobs", headers={"host": "[::1]:8000"}).status_code == 200


def test_another_sites_request_is_refused_even_on_loopback(sqlite_manager: JobManager) -> None:
    [job_id] = sqlite_manager.submit([python_job("a")]).job_ids
    with client_of(sqlite_manager) as c:
        for origin in ("http://evil.example", "null", "http://127.0.0.1:9999"):
            answer = c.post(f"/api/jobs/{job_id}/stop", headers={"origin": origin})
            assert answer.status_code == 403, origin
            assert "another site" in answer.json()["detail"]
        referer = {"referer": "http://evil.example/page"}
        assert c.post(f"/api/jobs/{job_id}/stop", headers=referer).status_code == 403
        # a form posted from another site carries no CSRF token either
        form = {"content-type": "application/x-www-form-urlencoded"}
        assert c.post(f"/api/jobs/{job_id}/stop", headers=form).status_code == 403
        assert sqlite_manager.store.get(job_id).status.value == "New"
        same = {"origin": BASE_URL}
        assert c.post(f"/api/jobs/{job_id}/stop", headers=same).status_code == 200


def test_a_browser_session_needs_its_csrf_token_to_change_anything(
    sqlite_manager: JobManager,
) -> None:
    [job_id] = sqlite_manager.submit([python_job("a")]).job_ids
    with client_of(sqlite_manager) as c:
        page = c.get("/login")  # open server: straight on, with a session cookie
        assert page.status_code == 200 and "streamfit_session" in c.cookies
        url = f"/api/jobs/{job_id}/stop"
        assert c.post(url).status_code == 403  # the cookie alone is not enough
        assert c.post(url, headers={"x-csrf-token": "forged"}).status_code == 403


# -- tokens ---------------------------------------------------------------------------------------


def test_api_clients_send_a_bearer_token_read_or_write(
    sqlite_manager: JobManager, guarded: TestClient
) -> None:
    [job_id] = sqlite_manager.submit([python_job("a")]).job_ids
    answer = guarded.get("/api/jobs")
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert guarded.get("/api/jobs", headers=_bearer("wrong-token-0123456789")).status_code == 401
    assert guarded.get("/api/jobs", headers={"authorization": f"Basic {WRITE}"}).status_code == 401
    assert guarded.get("/api/jobs", headers=_bearer(READ)).status_code == 200
    assert guarded.get("/openapi.json", headers=_bearer(READ)).status_code == 200
    refused = guarded.post(f"/api/jobs/{job_id}/stop", headers=_bearer(READ))
    assert refused.status_code == 403 and "reading only" in refused.json()["detail"]
    assert sqlite_manager.store.get(job_id).status.value == "New"
    assert guarded.post(f"/api/jobs/{job_id}/stop", headers=_bearer(WRITE)).status_code == 200


def test_a_browser_signs_in_and_holds_a_strict_httponly_cookie(
    sqlite_manager: JobManager, guarded: TestClient
) -> None:
    [job_id] = sqlite_manager.submit([python_job("a")]).job_ids
    away = guarded.get("/jobs/3?x=1", follow_redirects=False)
    assert away.status_code == 303
    assert away.headers["location"] == "/login?next=%2Fjobs%2F3%3Fx%3D1"
    form = guarded.get("/login?next=/api/jobs")
    assert form.status_code == 200
    csrf = _csrf(form.text)
    wrong = guarded.post(
        "/login",
        data={"token": "not-the-token-at-all", "csrf_token": csrf, "next": "/api/jobs"},
    )
    assert wrong.status_code == 401 and "not valid" in wrong.text
    no_csrf = guarded.post("/login", data={"token": WRITE, "next": "/api/jobs"})
    assert no_csrf.status_code == 403
    signed = guarded.post(
        "/login",
        data={"token": WRITE, "csrf_token": csrf, "next": "/api/jobs"},
        follow_redirects=False,
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/api/jobs"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert WRITE not in cookie
    guarded.cookies.set("streamfit_session", cookie.split(";")[0].split("=", 1)[1])
    assert guarded.get("/api/jobs").status_code == 200
    # a new session at sign-in: the CSRF token from before it is worth nothing
    url = f"/api/jobs/{job_id}/stop"
    assert guarded.post(url, headers={"x-csrf-token": csrf}).status_code == 403
    page = guarded.get("/api/jobs")  # the API sets no cookie; the session's token is needed
    assert "set-cookie" not in page.headers


def test_a_signed_in_browser_changes_with_its_csrf_token(
    sqlite_manager: JobManager, guarded: TestClient
) -> None:
    [job_id] = sqlite_manager.submit([python_job("a")]).job_ids
    csrf = _csrf(guarded.get("/login").text)
    guarded.post("/login", data={"token": WRITE, "csrf_token": csrf}, follow_redirects=False)
    # the sign-in form of the new session carries the new session's token
    token = _csrf(guarded.get("/login").text)
    assert token != csrf
    url = f"/api/jobs/{job_id}/stop"
    evil = {"x-csrf-token": token, "origin": "http://evil.example"}
    assert guarded.post(url, headers=evil).status_code == 403
    answer = guarded.post(url, headers={"x-csrf-token": token, "origin": BASE_URL})
    assert answer.status_code == 200


def test_a_read_only_session_cannot_change_anything(
    sqlite_manager: JobManager, guarded: TestClient
) -> None:
    [job_id] = sqlite_manager.submit([python_job("a")]).job_ids
    csrf = _csrf(guarded.get("/login").text)
    guarded.post("/login", data={"token": READ, "csrf_token": csrf}, follow_redirects=False)
    assert guarded.get(f"/api/jobs/{job_id}").status_code == 200
    security: Security = guarded.app.state.security  # type: ignore[attr-defined]
    session = read_session(security.key, guarded.cookies["streamfit_session"])
    assert session is not None and session[1] is Access.READ


def test_forged_altered_or_expired_sessions_are_no_session() -> None:
    key = b"k" * 32
    value = make_session(key, Access.WRITE, now=1000.0)
    assert read_session(key, value, now=1000.0) is not None
    assert read_session(key, value, now=1000.0 + 13 * 3600) is None
    body, mac = value.split(".")
    assert read_session(key, f"{body}x.{mac}", now=1000.0) is None
    assert read_session(b"j" * 32, value, now=1000.0) is None
    assert read_session(key, "garbage", now=1000.0) is None


def test_sign_in_goes_back_only_to_this_server() -> None:
    for target in ("https://evil.example/", "//evil.example", "/\\evil.example", "/a\nb", ""):
        assert safe_next(target) == "/"
    assert safe_next("/jobs/4") == "/jobs/4"


# -- headers and logs -------------------------------------------------------------------------


def test_every_answer_has_a_strict_content_security_policy(
    sqlite_manager: JobManager, guarded: TestClient
) -> None:
    for answer in (
        guarded.get("/api/jobs"),
        guarded.get("/api/jobs", headers=_bearer(READ)),
        guarded.get("/login"),
    ):
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP
    # no docs page loading scripts from a CDN
    assert guarded.get("/docs", headers=_bearer(READ)).status_code == 404


def test_tokens_are_never_logged(
    sqlite_manager: JobManager, guarded: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    csrf = _csrf(guarded.get("/login").text)
    guarded.post("/login", data={"token": WRITE, "csrf_token": csrf})
    guarded.post("/login", data={"token": READ + "x", "csrf_token": csrf})
    guarded.get("/api/jobs", headers=_bearer(READ))
    guarded.get("/api/jobs", headers=_bearer(WRITE + "x"))
    for secret in (WRITE, READ, csrf):
        assert secret not in caplog.text


def test_a_body_past_the_limit_is_refused_unread(sqlite_manager: JobManager) -> None:
    with client_of(sqlite_manager) as c:
        big = {"content-length": str(MAX_BODY_BYTES + 1), "content-type": "application/json"}
        answer = c.post("/api/jobs", headers=big, content=b"{}")
        assert answer.status_code == 413
        assert c.post("/api/jobs", headers={"content-length": "-1"}).status_code == 413
