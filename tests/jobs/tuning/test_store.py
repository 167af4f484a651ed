"""The tuning jobs' rows: leases that keep two schedulers off one tuning job, taken over at
once from a dead process of this host."""

from __future__ import annotations

import socket
import subprocess

from streamfit.jobs.store import Store
from streamfit.jobs.tuning import Tunings
from streamfit.jobs.tuning.store import holder
from tests.jobs.tuning.test_controller import _spec


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_lease_keeps_others_off_until_it_runs_out_or_its_holder_dies(store_url: str) -> None:
    store = Store(store_url)
    try:
        tunings = Tunings(store)
        tuning = tunings.create(_spec(), now=0.0)
        held = tunings.lease(tuning, now=0.0, seconds=60)
        assert held is not None and held.leased_by == holder()
        assert tunings.get(tuning.id).leased_by == holder()
        assert tunings.lease(tuning, now=1.0, seconds=60) is None  # a stale read: refused
        assert tunings.due(now=1.0) == []  # held by a live process (this one)
        assert tunings.lease(tunings.get(tuning.id), now=1.0, seconds=60) is None
        assert [t.id for t in tunings.due(now=61.0)] == [tuning.id]  # it ran out
        # held by a process of this host that died: free at once
        dead = tunings.update(
            tunings.get(tuning.id), leased_by=f"{socket.gethostname()}:{_dead_pid()}"
        )
        assert dead is not None
        assert [t.id for t in tunings.due(now=1.0)] == [tuning.id]
        assert tunings.lease(dead, now=1.0, seconds=60) is not None
        # another host's holder is waited for: its process cannot be looked at from here
        other = tunings.update(tunings.get(tuning.id), leased_by="elsewhere.example:1")
        assert other is not None and tunings.due(now=2.0) == []
        # a stop asked for during a pass leaves the pass's writes (and its letting go) alone
        tunings.request_stop(tuning.id)
        assert tunings.update(other, lease_until=None, leased_by=None) is not None
        assert tunings.get(tuning.id).stop_requested
    finally:
        store.close()
