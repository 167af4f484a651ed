"""``streamfit serve`` (:mod:`streamfit.cli.serve`) as users run it: a real uvicorn on a
loopback port, asked over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
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


@contextlib.contextmanager
def _serving(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``streamfit serve ARGS`` on a free loopback port, once it answers /ping: its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamfit", "serve", *args, "--port", str(port)],
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
        yield url, proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        finally:
            proc.kill()
            proc.communicate()


@pytest.fixture
def server(models: Models) -> Iterator[str]:
    with _serving(str(models.ll), f"clusters={models.kmeans}", "--batch-window-ms", "200") as (
        url,
        _,
    ):
        yield url


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


def _sixteen(url: str, path: str) -> list[httpx.Response]:
    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            requests = (
                client.post(path, content=csv_body(rows(1, s)), headers=CSV) for s in range(16)
            )
            return list(await asyncio.gather(*requests))

    return asyncio.run(send())


def _workers(pid: int, want: int) -> int:
    """How many worker processes ``pid`` has, once ``want`` (else after 60 s): uvicorn starts
    them one after another, and the first answers /ping before the last has started."""
    deadline = time.monotonic() + 60
    while True:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        found = 0
        for child in children:
            with contextlib.suppress(OSError):
                found += b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
        if found == want or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_worker_processes_answer_and_count_together(models: Models, tmp_path: Path) -> None:
    with _serving(str(models.pca), "--workers", "2") as (url, proc):
        assert _workers(proc.pid, 2) == 2  # two worker processes, each with the model
        for _ in range(2):
            answers = _sixteen(url, "/invocations")
            for s, a in enumerate(answers):
                assert_close(a.json(), {"predictions": expected(models.pca, rows(1, s), tmp_path)})
        metrics = httpx.get(f"{url}/metrics").text
    # Whichever worker answered /metrics, it counts every worker's requests.
    assert 'streamfit_serving_requests_total{model="pca",status="200"} 32.0' in metrics
    assert 'streamfit_serving_batch_rows_sum{model="pca"} 32.0' in metrics


@pytest.mark.slow  # two worker processes start one after the other
def test_each_worker_follows_the_published_versions(tmp_path: Path) -> None:
    from streamfit.serving.app import VERSION_HEADER
    from tests.serving.test_versions import Trainer

    trainer = Trainer(tmp_path / "job")
    trainer.publish()
    with _serving(str(tmp_path / "job"), "--workers", "2", "--poll-seconds", "0.1") as (url, proc):
        assert _workers(proc.pid, 2) == 2
        assert {a.headers[VERSION_HEADER] for a in _sixteen(url, "/invocations")} == {"000001"}
        assert trainer.publish() == "000002"
        swapped = 'streamfit_serving_model_swaps_total{model="job"} 2.0'
        deadline = time.monotonic() + 30
        while swapped not in httpx.get(f"{url}/metrics").text:  # counted by both workers
            assert time.monotonic() < deadline, "a worker never swapped"
            time.sleep(0.1)
        answers = _sixteen(url, "/invocations")
    assert {a.status_code for a in answers} == {200}
    assert {a.headers[VERSION_HEADER] for a in answers} == {"000002"}
