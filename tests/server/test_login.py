"""The sign-in page: the dashboard's frame (its stylesheet, no inline style or script, as the
Content-Security-Policy wants), the form's CSRF token, and nothing from the request unescaped."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from streamfit.jobs.manager import JobManager
from streamfit.server.security import Security
from tests.server.conftest import client_of

WRITE = "write-token-0123456789abcdef"


@pytest.fixture
def guarded(sqlite_manager: JobManager) -> Iterator[TestClient]:
    with client_of(sqlite_manager, Security(write_token=WRITE, allowed_hosts=None)) as c:
        yield c


def test_the_sign_in_page_is_a_dashboard_page_without_inline_style_or_script(
    guarded: TestClient,
) -> None:
    page = guarded.get("/login", params={"next": "/jobs/3"})
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert re.search(r'<link rel="stylesheet" href="/static/dashboard\.css\?v=\w+">', html)
    assert '<section class="panel login">' in html and "<title>Sign in · streamfit" in html
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # every script is a file
    assert 'href="/trends"' not in html  # no navigation to pages it cannot show yet
    assert re.search(r'name="csrf_token" value="[^"]+"', html)
    assert 'name="next" value="/jobs/3"' in html


def test_the_sign_in_page_escapes_what_it_was_given(guarded: TestClient) -> None:
    page = guarded.get("/login", params={"next": '/x"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text
    wrong = guarded.post(
        "/login",
        data={
            "token": "not-the-token",
            "csrf_token": re.findall(r'name="csrf_token" value="([^"]+)"', page.text)[0],
        },
    )
    assert wrong.status_code == 401
    assert '<p class="muted">That token is not valid.</p>' in wrong.text
