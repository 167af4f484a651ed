"""The in-memory backend does what the real ones do, as the steps see it: idempotent launch,
capacity, runs that end on the clock or when told, stops, lost runs, logs."""

from __future__ import annotations

import pytest

from streamfit.jobs.backends.base import RunPhase, RunRequest
from streamfit.jobs.backends.memory import Exit, MemoryBackend
from streamfit.jobs.clock import FakeClock
from streamfit.jobs.errors import CapacityError, InvalidJobError, TransientLaunchError
from streamfit.jobs.runs import classify, run_name
from streamfit.jobs.spec import Resources
from streamfit.jobs.status import FailureKind, Status

STORE = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8"


def _req(job_id: int, cpus: float = 1.0) -> RunRequest:
    return RunRequest(run_name(STORE, job_id, 1), ["train"], resources=Resources(cpus=cpus))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def test_a_run_ends_when_its_exit_is_due_on_the_clock(clock: FakeClock) -> None:
    backend = MemoryBackend(clock, script=lambda r: Exit(7, "hello\n", after=30))
    ref = backend.launch(_req(1))
    assert backend.poll(ref) == backend.poll(ref)
    assert backend.poll(ref).phase == RunPhase.RUNNING and backend.poll(ref).started_at == 1000
    clock.advance(29.5)
    assert backend.poll(ref).phase == RunPhase.RUNNING and backend.logs(ref) == ""
    clock.advance(10)
    state = backend.poll(ref)
    assert (state.phase, state.exit_code, state.ended_at) == (RunPhase.EXITED, 7, 1030.0)
    assert backend.logs(ref) == "hello\n" and backend.logs(ref, tail_bytes=3) == "lo\n"
    assert backend.poll("nope").phase == RunPhase.UNKNOWN and backend.logs("nope") == ""


def test_launching_the_same_name_twice_runs_it_once(clock: FakeClock) -> None:
    backend = MemoryBackend(clock)
    name = run_name(STORE, 1, 1)
    assert backend.launch(_req(1)) == backend.launch(_req(1)) == name
    assert backend.launched() == [name] and backend.launches[name] == 2


def test_capacity_is_held_until_runs_end(clock: FakeClock) -> None:
    backend = MemoryBackend(clock, capacity=Resources(cpus=2, gpus=0, memory_mb=4096))
    assert backend.free() == Resources(cpus=2, gpus=0, memory_mb=4096)
    ref = backend.launch(_req(1, cpus=1.5))
    assert backend.free() == Resources.model_construct(cpus=0.5, gpus=0, memory_mb=3072)
    with pytest.raises(CapacityError, match=r"needs 1 CPUs, 0 GPUs, 1024 MB; free 0\.5 CPUs"):
        backend.launch(_req(2))
    with pytest.raises(InvalidJobError, match="asks for 3 CPUs"):
        backend.launch(_req(3, cpus=3))
    backend.finish(ref, 0)
    assert backend.launch(_req(2)) == run_name(STORE, 2, 1)
    unbounded = MemoryBackend(clock)
    assert unbounded.capacity is None and unbounded.free() is None


def test_refused_launches_raise_in_order_then_launch(clock: FakeClock) -> None:
    backend = MemoryBackend(clock)
    backend.refuse(TransientLaunchError("hiccup"), CapacityError("full"))
    with pytest.raises(TransientLaunchError):
        backend.launch(_req(1))
    with pytest.raises(CapacityError):
        backend.launch(_req(1))
    name = backend.launch(_req(1))
    assert name == run_name(STORE, 1, 1) and backend.launches[name] == 3


def test_pending_runs_wait_for_start(clock: FakeClock) -> None:
    backend = MemoryBackend(clock, pending=True, script=lambda r: Exit(0, after=5))
    ref = backend.launch(_req(1))
    clock.advance(60)
    assert backend.poll(ref).phase == RunPhase.PENDING and backend.poll(ref).started_at is None
    backend.start(ref)
    clock.advance(5)
    assert backend.poll(ref).phase == RunPhase.EXITED and backend.poll(ref).started_at == 1060


def test_stops_end_runs_as_sigterm_would_and_classify_like_real_ones(clock: FakeClock) -> None:
    backend = MemoryBackend(clock)
    asked, overstayed = backend.launch(_req(1)), backend.launch(_req(2))
    backend.stop(asked)
    backend.stop(overstayed, timed_out=True)
    assert classify(backend.poll(asked), builtin=True).status == Status.STOPPED
    outcome = classify(backend.poll(overstayed), builtin=True)
    assert (outcome.status, outcome.reason) == (Status.FAILED, "exceeded max_runtime_seconds")
    stubborn = MemoryBackend(clock, stop_ends_runs=False)
    ref = stubborn.launch(_req(1))
    stubborn.stop(ref)
    state = stubborn.poll(ref)
    assert state.phase == RunPhase.RUNNING and state.stop_requested


def test_lost_and_forgotten_runs(clock: FakeClock) -> None:
    backend = MemoryBackend(clock)
    lost, forgotten = backend.launch(_req(1)), backend.launch(_req(2))
    backend.vanish(lost, "the node died")
    backend.forget(forgotten)
    for ref, phase in ((lost, RunPhase.VANISHED), (forgotten, RunPhase.UNKNOWN)):
        state = backend.poll(ref)
        assert state.phase == phase
        assert classify(state, builtin=False).kind == FailureKind.INFRASTRUCTURE
    assert backend.poll(lost).error == "the node died"
