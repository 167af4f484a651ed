"""Safe by default: the token, the Host allow-list, and loopback unless a token is set."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from streamfit.cli.main import cli
from streamfit.cli.options import EXIT_CODES
from streamfit.errors import ConfigError
from streamfit.serving import ServeSettings, create_app, load_served
from streamfit.serving.security import LOOPBACK_NAMES, TOKEN_VARIABLE, read_token
from tests.serving.conftest import Models

TOKEN = "s3cret-token-of-24-chars"
CSV = {"Content-Type": "text/csv"}


def test_the_token_comes_from_its_file_else_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert read_token(path, {TOKEN_VARIABLE: "other-token-of-enough-length"}) == TOKEN
    assert read_token(None, {TOKEN_VARIABLE: TOKEN}) == TOKEN
    assert read_token(None, {}) is None


def test_a_short_or_unreadable_token_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has 5 characters") as caught:
        read_token(None, {TOKEN_VARIABLE: "abcde"})
    assert "abcde" not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read the token"):
        read_token(tmp_path / "missing", {})


@pytest.fixture
def guarded(models: Models) -> TestClient:
    app = create_app(load_served([str(models.ll)]), ServeSettings(token=TOKEN))
    return TestClient(app)


def test_every_route_but_ping_needs_the_token(guarded: TestClient) -> None:
    with guarded as c:
        assert c.get("/ping").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            refused = c.post("/invocations", content=b"1,2,3,4\n", headers=CSV | headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json() == {"error": "a valid bearer token is required"}
        assert c.get("/metrics").status_code == 401
        assert c.get("/models").status_code == 401
        ok = {"Authorization": f"Bearer {TOKEN}"}
        assert c.post("/invocations", content=b"1,2,3,4\n", headers=CSV | ok).status_code == 200
        assert c.get("/metrics", headers=ok).status_code == 200


def test_a_host_outside_the_allow_list_is_refused(models: Models) -> None:
    settings = ServeSettings(allowed_hosts=LOOPBACK_NAMES)
    app = create_app(load_served([str(models.ll)]), settings)
    with TestClient(app, base_url="http://127.0.0.1:8080") as c:
        assert c.get("/ping").status_code == 200
        assert c.get("/ping", headers={"Host": "localhost:8080"}).status_code == 200
        assert c.get("/ping", headers={"Host": "[::1]:8080"}).status_code == 200
        rebound = c.post(
            "/invocations", content=b"1,2,3,4\n", headers=CSV | {"Host": "evil.example:8080"}
        )
        assert rebound.status_code == 421
        assert rebound.json() == {"error": "host 'evil.example' is not served here"}


def test_serving_the_network_needs_a_token(models: Models, tmp_path: Path) -> None:
    runner = CliRunner()
    bare = runner.invoke(cli, ["serve", str(models.ll), "--host", "0.0.0.0"], env={})
    assert bare.exit_code == EXIT_CODES["config"]
    assert "--host 0.0.0.0 serves the network: set STREAMFIT_API_TOKEN" in bare.output
    short = runner.invoke(
        cli, ["serve", str(models.ll), "--host", "0.0.0.0"], env={TOKEN_VARIABLE: "tiny"}
    )
    assert short.exit_code == EXIT_CODES["config"]
    assert "has 4 characters" in short.output
    assert "tiny" not in short.output
