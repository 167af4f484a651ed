"""``streamfit server``: a real process serving the store's API on loopback, and refusing the
network without a token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from streamfit.jobs.spec import JobSpec
from streamfit.jobs.store import Store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFIT_")}
    return {**env, "STREAMFIT_HOME": str(home), **extra}


def test_server_serves_the_stores_api_on_loopback(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store.open(home)
    store.submit([JobSpec(name="a", owner="ann@example.com", command=["true"])], now=0.0)
    store.close()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamfit", "server", "--port", str(port)],
        env=_env(home),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/jobs", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert answer.status_code == 200
        assert [j["name"] for j in answer.json()["jobs"]] == ["a"]
        assert "content-security-policy" in answer.headers
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"listening on http://127.0.0.1:{port} (no token: everything allowed)" in err


def test_server_refuses_the_network_without_a_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamfit", "server", "--host", "0.0.0.0"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.startswith("error: --host 0.0.0.0 serves the network: set ")
    assert not (tmp_path / "streamfit.db").exists()  # refused before the store is opened
