"""The dashboard in a real browser: the real app under uvicorn on a loopback port, over a SQLite
store holding jobs from a real scheduler run (real training processes, a failing command, and
a command that runs until it is stopped), driven by Debian's Chromium through Playwright.

Screenshots go to a temporary folder, and also to ``$STREAMFIT_SCREENSHOTS`` when it is set
(``STREAMFIT_SCREENSHOTS=docs/screenshots pytest tests/server/browser`` refreshes the
README's)."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import expect

from streamfit.datagen import linear_task, write_batches
from streamfit.jobs.manager import JobManager
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import JobSpec
from streamfit.server.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OWNER = "ann@example.com"
#: A job that prints a line every 0.2 s for a minute: its log grows while the test watches.
TICKER = (
    "import time\nfor i in range(300):\n    print(f'step {i}', flush=True)\n    time.sleep(0.2)\n"
)


@dataclass
class Site:
    url: str
    manager: JobManager
    sweep: str  # the submission of the training jobs
    trained: list[int]  # their ids
    failing: int
    hello: int
    ticker: int  # runs until the test stops it
    shots: list[Path] = field(default_factory=list)  # where screenshots go

    def settled(self, ids: list[int] | None = None, timeout: float = 120) -> None:
        """Wait until the jobs ``ids`` (default: all but the ticker) have ended: the scheduler
        runs in the background from the start, so the first tests run while the training
        jobs train."""
        store = self.manager.store
        deadline = time.monotonic() + timeout
        while not all(
            j.final for j in store.find() if j.id in (ids or [j.id]) and j.id != self.ticker
        ):
            assert time.monotonic() < deadline, store.counts()
            time.sleep(0.1)

    def screenshot(self, page: Any, name: str) -> None:
        for folder in self.shots:
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _specs(data: Path, short: Path) -> list[JobSpec]:
    """Two training jobs; the second reads so few rows that its curve is one point."""
    return [
        JobSpec.model_validate(
            {
                "name": f"ll-lr{lr:g}",
                "owner": OWNER,
                "algorithm": "linear-learner",
                "hyperparameters": {
                    "predictor_type": "binary_classifier",
                    "num_models": 1,
                    "learning_rate": lr,
                    "mini_batch_size": 100,
                },
                "inputs": {"train": str(rows), "validation": str(data)},
                "tags": {"sweep": "lr"},
            }
        )
        for lr, rows in ((0.01, data), (0.3, short))
    ]


def _command(name: str, code: str, **kw: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": name,
            "owner": "bob@example.com",
            "command": [sys.executable, "-c", code],
            "tags": {"team": "data"},
            **kw,
        }
    )


def serve(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    """``app`` under uvicorn on a free loopback port: its address, the server, its thread."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    return f"http://127.0.0.1:{port}", server, serving


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    root = tmp_path_factory.mktemp("dashboard")
    data = root / "train.parquet"
    write_batches(data, linear_task(5, seed=4).blocks(6000, block=1000))
    short = root / "short.parquet"
    write_batches(short, linear_task(5, seed=4).blocks(300, block=300))
    settings = Settings.load(
        env={},
        home=root / "home",
        capacity_cpus=8,
        launch_interval=0.1,
        monitor_interval=0.1,
        retry_interval=0.1,
    )
    manager = JobManager.open(settings, notifiers={})
    sweep = manager.submit(_specs(data, short))
    hello, failing = manager.submit(
        [
            _command("hello", "print('hello')"),
            _command(
                "broken-etl",
                "import sys; print('reading rows'); sys.exit('no column user_id')",
                retry={"algorithm": 1, "backoff_seconds": 0},
            ),
        ]
    ).job_ids
    [ticker] = manager.submit([_command("ticker", TICKER)]).job_ids
    scheduler = manager.scheduler()
    stop = threading.Event()
    background = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    background.start()

    url, server, serving = serve(create_app(manager=manager))

    shots = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("STREAMFIT_SCREENSHOTS"):
        shots.append(Path(os.environ["STREAMFIT_SCREENSHOTS"]))
        shots[-1].mkdir(parents=True, exist_ok=True)
    yield Site(
        url,
        manager,
        sweep.id,
        sweep.job_ids,
        failing,
        hello,
        ticker,
        shots,
    )
    server.should_exit = True
    serving.join(10)
    if not manager.store.get(ticker).final:
        manager.stop(ticker)  # the background scheduler records it Stopped
    deadline = time.monotonic() + 20
    while not manager.store.get(ticker).final and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    background.join(10)
    manager.close()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh page; the test fails on any script error or blocked resource (a CSP
    violation, a missing asset) the page reports."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=site.url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    # Generous: the machine that runs the suite may be busy (a passing check returns at once).
    page.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    yield page
    context.close()
    assert not problems, problems
