"""``streamfit scheduler run|tick``: move jobs along, as a daemon or one pass at a time (cron).

Several schedulers may share one store (each status change is a guarded update), and runs
outlive the scheduler that launched them: stopping it loses nothing.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import click

from streamfit.cli.jobs import open_manager, store_options
from streamfit.cli.options import handle_errors, print_json
from streamfit.jobs.settings import Settings

__all__ = ["scheduler_group"]

log = logging.getLogger("streamfit.scheduler")

F = TypeVar("F", bound=Callable[..., Any])


def backend_options(fn: F) -> F:
    """``--backend`` and ``--ray-address``, folded into ``settings`` (given by store_options)."""

    @click.option(
        "--backend",
        type=click.Choice(["local", "ray"]),
        envvar="STREAMFIT_BACKEND",
        default=None,
        help="Where runs happen: this machine's processes, or a Ray cluster "
        "[env: STREAMFIT_BACKEND; default: local].",
    )
    @click.option(
        "--ray-address",
        envvar="STREAMFIT_RAY_ADDRESS",
        default=None,
        help="The Ray cluster's dashboard (Jobs API), e.g. http://127.0.0.1:8265 "
        "[env: STREAMFIT_RAY_ADDRESS].",
    )
    @functools.wraps(fn)
    def wrapper(
        *args: Any, settings: Settings, backend: str | None, ray_address: str | None, **kw: Any
    ) -> Any:
        given = {"backend": backend, "ray_address": ray_address}
        given = {k: v for k, v in given.items() if v is not None}
        if given:  # validated again, as Settings.load validates
            settings = Settings.model_validate({**settings.model_dump(), **given})
        return fn(*args, settings=settings, **kw)

    return wrapper  # type: ignore[return-value]


@click.group("scheduler")
def scheduler_group() -> None:
    """Run the job manager's steps: launch, monitor, retry, notify."""


@scheduler_group.command("run")
@handle_errors
@store_options
@backend_options
def run_command(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT (Ctrl-C), then exit 0; runs keep going. Logs to stderr."""
    stop = threading.Event()
    got: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        got.append(signum)  # no logging here: the handler may interrupt a log call
        stop.set()

    streamfit_log = logging.getLogger("streamfit")
    level = streamfit_log.level
    if streamfit_log.getEffectiveLevel() > logging.INFO:  # a daemon says what it does
        streamfit_log.setLevel(logging.INFO)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with open_manager(settings, notifiers=None) as manager:  # None: from the settings
            scheduler = manager.scheduler()
            log.info(
                "scheduler %d started: home %s, backend %s, notifiers %s",
                os.getpid(),
                settings.home,
                settings.backend,
                ", ".join(sorted(manager.notifiers)) or "none",
            )
            scheduler.run(stop)
            totals = ", ".join(f"{s.name} {s.total}" for s in scheduler.steps)
            why = signal.Signals(got[0]).name if got else "asked to"
            log.info("scheduler %d stopped (%s); changes made: %s", os.getpid(), why, totals)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        streamfit_log.setLevel(level)


@scheduler_group.command("tick")
@handle_errors
@store_options
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def tick_command(settings: Settings, as_json: bool) -> None:
    """One pass of every step (for cron); prints what each step changed, and the jobs by
    status."""
    with open_manager(settings, notifiers=None) as manager:
        steps = manager.scheduler().tick()
        statuses = manager.store.counts()
    if as_json:
        print_json({"steps": steps, "jobs": statuses})
    else:
        click.echo(
            "changed: "
            + ", ".join(f"{name} {n}" for name, n in steps.items())
            + " | jobs: "
            + (", ".join(f"{status} {n}" for status, n in sorted(statuses.items())) or "none")
        )
