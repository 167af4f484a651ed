"""``streamfit serve`` (:mod:`streamfit.cli.serve`) as users run it: a real uvicorn on a
loopback port, asked over HTTP."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from streamfit.cli.main import cli
from streamfit.cli.options import EXIT_CODES
from tests.serving.conftest import Models, assert_close, csv_body, expected, rows

CSV = {"Content-Type": "text/csv"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(models: Models) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "streamfit", "serve", str(models.ll)),
            *(f"clusters={models.kmeans}", "--port", str(port), "--batch-window-ms", "200"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited: {proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never answered /ping"
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        finally:
            proc.kill()
            proc.communicate()


def test_serve_answers_over_http_and_batches_concurrent_requests(
    server: str, models: Models, tmp_path: Path
) -> None:
    x = rows(3, seed=5)
    answer = httpx.post(f"{server}/models/clusters/invocations", content=csv_body(x), headers=CSV)
    assert answer.json() == {"predictions": expected(models.kmeans, x, tmp_path)}

    async def sixteen() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            "/models/ll/invocations", content=csv_body(rows(1, s)), headers=CSV
                        )
                        for s in range(16)
                    )
                )
            )

    answers = asyncio.run(sixteen())
    assert [a.status_code for a in answers] == [200] * 16
    for s, a in enumerate(answers):
        assert_close(a.json(), {"predictions": expected(models.ll, rows(1, s), tmp_path)})
    metrics = httpx.get(f"{server}/metrics").text
    assert 'streamfit_serving_batch_rows_sum{model="ll"} 16.0' in metrics
    calls = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith('streamfit_serving_batch_rows_count{model="ll"}')
    )
    assert calls < 16  # some requests shared a model call

    bad = httpx.post(f"{server}/models/ll/invocations", content=b"1,2\n", headers=CSV)
    assert bad.status_code == 400
    assert bad.json()["row"] == 1
    assert httpx.get(f"{server}/ping").status_code == 200
    # On loopback, by default: a name rebound to 127.0.0.1 by a web page is not answered.
    assert httpx.get(f"{server}/ping", headers={"Host": "evil.example"}).status_code == 421


def test_serve_refuses_models_it_cannot_load(models: Models, tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["serve", str(tmp_path / "nope")])
    assert missing.exit_code == EXIT_CODES["config"]
    assert "no such model folder" in missing.output
    twice = CliRunner().invoke(cli, ["serve", str(models.ll), f"ll={models.kmeans}"])
    assert twice.exit_code == EXIT_CODES["config"]
    assert "two models are named 'll'" in twice.output
