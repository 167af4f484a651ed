"""Driving a tuning job to its end on the fake backend and clock, as the tuning tests do."""

from __future__ import annotations

from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.tuning import Tunings
from tests.jobs.conftest import Fake


def settle(fake: Fake, tunings: Tunings, tuning_id: int, ticks: int) -> int:
    """Scheduler ticks, a second apart, until the tuning job ends (at most ``ticks``);
    returns the most jobs active at once after a tick."""
    scheduler = Scheduler(fake.ctx)
    most = 0
    for _ in range(ticks):
        scheduler.tick()
        most = max(most, len(fake.ctx.store.active()))
        if tunings.get(tuning_id).final:
            return most
        fake.clock.advance(1.0)
    raise AssertionError(f"not ended: {tunings.get(tuning_id)}")
