"""The app a worker process builds from what ``streamfit serve --workers`` hands it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from streamfit.errors import ConfigError
from streamfit.serving import ServeSettings
from streamfit.serving.security import TOKEN_VARIABLE
from streamfit.serving.worker import CONFIG_VARIABLE, app_from_environment, worker_environment
from tests.serving.conftest import Models

TOKEN = "a-worker-token-of-some-length"


def test_a_worker_serves_as_the_command_was_told(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ServeSettings(
        max_request_rows=1, token=TOKEN, allowed_hosts=frozenset({"model.internal"})
    )
    described = worker_environment([f"churn={models.ll}"], "cpu", settings, None)
    assert TOKEN not in described  # the token stays where the command found it
    monkeypatch.setenv(CONFIG_VARIABLE, described)
    monkeypatch.setenv(TOKEN_VARIABLE, TOKEN)
    with TestClient(app_from_environment(), base_url="http://model.internal") as c:
        headers = {"Content-Type": "text/csv", "Authorization": f"Bearer {TOKEN}"}
        one = c.post("/models/churn/invocations", content=b"1,2,3,4\n", headers=headers)
        assert one.status_code == 200
        two = c.post("/models/churn/invocations", content=b"1,2,3,4\n" * 2, headers=headers)
        assert two.status_code == 413
        assert c.post("/models/churn/invocations", content=b"1,2,3,4\n").status_code == 401
        other_host = c.get("/ping", headers={"Host": "elsewhere"})
        assert other_host.status_code == 421


def test_a_worker_started_by_hand_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_VARIABLE, raising=False)
    with pytest.raises(ConfigError, match="start workers with streamfit serve"):
        app_from_environment()
