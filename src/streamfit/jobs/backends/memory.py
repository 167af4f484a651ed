"""The in-memory backend: runs that exist only in this process and do what the test says.

The fake beside the real backends (as Dramatiq's ``StubBroker`` and httpx's ``MockTransport``
ship beside theirs), for tests and benchmarks of the steps' logic: no process starts, and time
is the clock it is given (a :class:`~streamfit.jobs.clock.FakeClock` that the test advances).
A run ends when its :class:`Exit` is due, or when the test calls :meth:`MemoryBackend.finish`,
:meth:`~MemoryBackend.vanish` or :meth:`~MemoryBackend.forget`; :meth:`~MemoryBackend.refuse`
makes the next launches raise. Real processes, PostgreSQL and Ray stay in the end-to-end tests.

>>> from streamfit.jobs.clock import FakeClock
>>> clock = FakeClock(0.0)
>>> backend = MemoryBackend(clock, script=lambda request: Exit(3, "bad row\\n", after=10))
>>> ref = backend.launch(RunRequest("s-1-1", ["train"]))
>>> backend.poll(ref).phase
<RunPhase.RUNNING: 'running'>
>>> clock.advance(10); state = backend.poll(ref)
>>> state.phase, state.exit_code, backend.logs(ref)
(<RunPhase.EXITED: 'exited'>, 3, 'bad row\\n')
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from streamfit.jobs.backends.base import RunPhase, RunRequest, RunState
from streamfit.jobs.clock import Clock, SystemClock
from streamfit.jobs.errors import CapacityError, InvalidJobError, LaunchError
from streamfit.jobs.spec import Resources

__all__ = ["Exit", "MemoryBackend", "MemoryRun", "Script"]


@dataclass(frozen=True)
class Exit:
    """How a run ends by itself: with ``code`` (negative: killed by that signal) and ``log``
    as its output, ``after`` seconds of the backend's clock from its start."""

    code: int = 0
    log: str = ""
    after: float = 0.0


#: What each launched run will do: its :class:`Exit`, or None to run until the test ends it.
Script = Callable[[RunRequest], Exit | None]


@dataclass
class MemoryRun:
    """One run: its request (secrets included: they never leave memory) and its state."""

    request: RunRequest
    state: RunState
    exit: Exit | None
    log: str = ""

    @property
    def holds_resources(self) -> bool:
        return self.state.phase in (RunPhase.PENDING, RunPhase.RUNNING)


class MemoryBackend:
    """Runs in memory. ``capacity``: what it has (None: unbounded, never a capacity error);
    ``script``: what each run does (default: it runs until the test ends it); ``pending``:
    new runs wait in a queue (:attr:`RunPhase.PENDING`) until :meth:`start`.

    A stop ends the run at once, as a process would on SIGTERM (exit status -15), unless
    ``stop_ends_runs`` is False (a process that ignores it: the test ends it later).
    """

    name = "memory"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        capacity: Resources | None = None,
        script: Script | None = None,
        pending: bool = False,
        stop_ends_runs: bool = True,
    ) -> None:
        self.clock = clock or SystemClock()
        self._capacity = capacity
        self.script = script
        self.pending = pending
        self.stop_ends_runs = stop_ends_runs
        self.runs: dict[str, MemoryRun] = {}
        #: Calls of ``launch`` per run name (a run launched twice is still one run).
        self.launches: Counter[str] = Counter()
        self._refusals: list[LaunchError] = []

    # -- what the test does ----------------------------------------------------------------

    def refuse(self, *errors: LaunchError) -> None:
        """The next ``launch`` calls raise these, one each, in order."""
        self._refusals.extend(errors)

    def start(self, ref: str) -> None:
        """A pending run starts (the cluster found room for it)."""
        run = self.runs[ref]
        if run.state.phase == RunPhase.PENDING:
            self._begin(run)

    def finish(self, ref: str, code: int = 0, log: str = "") -> None:
        """The run exits now with ``code``, having printed ``log``."""
        run = self.runs[ref]
        run.log += log
        run.state = replace(
            run.state,
            phase=RunPhase.EXITED,
            exit_code=code,
            started_at=run.state.started_at or self.clock.now(),
            ended_at=self.clock.now(),
        )

    def vanish(self, ref: str, error: str = "the run's process is gone") -> None:
        """The run is lost with no exit status (its machine died)."""
        run = self.runs[ref]
        run.state = replace(run.state, phase=RunPhase.VANISHED, error=error)

    def forget(self, ref: str) -> None:
        """The backend no longer knows the run (a cluster restarted): it polls as unknown."""
        del self.runs[ref]

    def launched(self) -> list[str]:
        """The names of every run, as :meth:`LocalBackend.launched` lists them."""
        return sorted(self.runs)

    # -- capacity --------------------------------------------------------------------------

    @property
    def capacity(self) -> Resources | None:
        return self._capacity

    def used(self) -> Resources:
        """What the runs that have not ended hold."""
        return Resources.total(r.request.resources for r in self.runs.values() if r.holds_resources)

    def free(self) -> Resources | None:
        return None if self._capacity is None else self._capacity - self.used()

    # -- the protocol ----------------------------------------------------------------------

    def launch(self, request: RunRequest) -> str:
        self.launches[request.name] += 1
        if self._refusals:
            raise self._refusals.pop(0)
        if request.name in self.runs:  # launched before: the name is the idempotency key
            return request.name
        want = request.resources
        if self._capacity is not None:
            if not want.fits_within(self._capacity):
                raise InvalidJobError(f"asks for {want}; the backend has {self._capacity}")
            free = self._capacity - self.used()
            if not want.fits_within(free):
                raise CapacityError(f"needs {want}; free {free}")
        run = MemoryRun(request, RunState(RunPhase.PENDING), None)
        self.runs[request.name] = run
        if not self.pending:
            self._begin(run)
        return request.name

    def poll(self, ref: str) -> RunState:
        run = self.runs.get(ref)
        if run is None:
            return RunState(RunPhase.UNKNOWN, error=f"no run {ref!r}")
        ends = run.exit
        if run.state.phase == RunPhase.RUNNING and ends is not None:
            started = run.state.started_at or 0.0
            if self.clock.now() >= started + ends.after:
                run.log += ends.log
                run.state = replace(
                    run.state,
                    phase=RunPhase.EXITED,
                    exit_code=ends.code,
                    ended_at=started + ends.after,
                )
        return run.state

    def stop(self, ref: str, *, timed_out: bool = False) -> None:
        run = self.runs.get(ref)
        if run is None or run.state.phase not in (RunPhase.PENDING, RunPhase.RUNNING):
            return
        if timed_out:
            run.state = replace(run.state, timed_out=True)
        else:
            run.state = replace(run.state, stop_requested=True)
        if self.stop_ends_runs:
            self.finish(ref, -int(signal.SIGTERM))

    def logs(self, ref: str, tail_bytes: int | None = None) -> str:
        run = self.runs.get(ref)
        if run is None:
            return ""
        if tail_bytes is None:
            return run.log
        return run.log.encode()[-tail_bytes:].decode("utf-8", errors="replace")

    def _begin(self, run: MemoryRun) -> None:
        run.state = replace(run.state, phase=RunPhase.RUNNING, started_at=self.clock.now())
        run.exit = self.script(run.request) if self.script is not None else None
