"""The scheduler: the launch, monitor, retry, tuning and notify steps, on intervals and
whenever a step had work. ``tick`` is one pass of each (for cron); ``run`` loops until stopped.

Every step is an idempotent pass over the store, so any number of ticks, crashes and
concurrent schedulers add up to the same history.

Before a tick, and every ``verify_interval`` seconds while running, the scheduler checks that
its store is still the one it opened (:meth:`Store.verify`); a store deleted, replaced or reset
under it raises :class:`~streamfit.jobs.errors.StoreError`, which stops it: its records would
go nowhere, or into another store. A step that finds its store unusable stops it too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streamfit.jobs.context import StepContext
from streamfit.jobs.errors import StoreError
from streamfit.jobs.launch import launch_step
from streamfit.jobs.monitor import monitor_step
from streamfit.jobs.retry import retry_step
from streamfit.jobs.tuning.controller import tuning_step

__all__ = ["Scheduler", "Step"]

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    run: Callable[[], int]
    interval: float
    last: float = 0.0
    busy: bool = True  # had work last time: run again without waiting
    total: int = 0

    def due(self, now: float) -> bool:
        return self.busy or now - self.last >= self.interval


@dataclass
class Scheduler:
    ctx: StepContext
    notify: Callable[[StepContext], int] | None = None
    launch_interval: float = 1.0
    monitor_interval: float = 1.0
    retry_interval: float = 2.0
    tuning_interval: float = 2.0
    notify_interval: float = 2.0
    verify_interval: float = 2.0
    steps: list[Step] = field(init=False)

    def __post_init__(self) -> None:
        ctx = self.ctx
        self.steps = [
            Step("monitor", lambda: monitor_step(ctx), self.monitor_interval),
            Step("retry", lambda: retry_step(ctx), self.retry_interval),
            # after monitor (it tells the trials that just ended), before launch (it launches
            # the trials just asked for)
            Step("tuning", lambda: tuning_step(ctx), self.tuning_interval),
            Step("launch", lambda: launch_step(ctx), self.launch_interval),
        ]
        self._notify_step = (
            Step("notify", lambda: self.notify(ctx) if self.notify else 0, self.notify_interval)
            if self.notify is not None
            else None
        )
        self._verified = time.monotonic()
        self._failure: StoreError | None = None

    def tick(self) -> dict[str, int]:
        """One pass of every step (monitor first: it frees capacity for launch)."""
        self._verify()
        counts = {step.name: self._run(step) for step in self.steps}
        if self._notify_step is not None:
            counts["notify"] = self._run(self._notify_step)
        return counts

    def _run(self, step: Step) -> int:
        started = time.monotonic()
        try:
            n = step.run()
        except StoreError:
            raise
        except Exception:  # a step that fails is logged and run again next time
            log.exception("the %s step failed", step.name)
            n = 0
        step.last, step.busy, step.total = started, n > 0, step.total + n
        return n

    def run(self, stop: threading.Event, idle_sleep: float = 0.2) -> None:
        """Run the steps until ``stop`` is set. Notifications go out from a thread of their
        own, so a slow or unreachable mail server never holds up launching and monitoring."""
        sender = None
        if self._notify_step is not None:
            notify_step = self._notify_step
            sender = threading.Thread(
                target=self._sender,
                args=([notify_step], stop, idle_sleep),
                name="streamfit-notify",
                daemon=True,
            )
            sender.start()
        try:
            self._loop(self.steps, stop, idle_sleep, verify=True)
        finally:
            if sender is not None:
                stop.set()  # (it is set already, unless the store failed)
                sender.join(timeout=30)
        if self._failure is not None:
            raise self._failure

    def _sender(self, steps: list[Step], stop: threading.Event, idle_sleep: float) -> None:
        try:
            self._loop(steps, stop, idle_sleep)
        except StoreError as exc:  # the main loop raises it
            self._failure = exc
            stop.set()

    def _verify(self) -> None:
        self._verified = time.monotonic()
        self.ctx.store.verify()

    def _loop(
        self, steps: list[Step], stop: threading.Event, idle_sleep: float, verify: bool = False
    ) -> None:
        while not stop.is_set():
            if verify and time.monotonic() - self._verified >= self.verify_interval:
                try:
                    self._verify()
                except StoreError:
                    raise
                except Exception:  # (a database that does not answer: as a failing step)
                    log.exception("checking the store failed")
            worked = False
            for step in steps:
                if step.due(time.monotonic()):
                    worked |= self._run(step) > 0
            if not worked:
                stop.wait(idle_sleep)

    def run_until(self, done: Callable[[], bool], timeout: float, idle_sleep: float = 0.1) -> bool:
        """Tick until ``done()`` (e.g. every job terminal); False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = self.tick()
            if done():
                return True
            if not any(counts.values()):
                time.sleep(idle_sleep)
        return False
