"""What a backend is: launch, poll, stop, logs, and its capacity. Everything else is the
steps' business."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from streamfit.jobs.spec import Resources

__all__ = ["Backend", "RunPhase", "RunRequest", "RunState"]


@dataclass(frozen=True)
class RunRequest:
    """One attempt of a job. ``name`` is the idempotency key: launching it twice runs once."""

    name: str
    argv: list[str]
    #: The whole environment of a process started on this machine, less ``secret_env``.
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    resources: Resources = field(default_factory=Resources)
    #: Only the variables the job sets itself (its spec's ``env`` and ``STREAMFIT_*``): what a
    #: backend running it on another machine passes on, as that machine's own environment
    #: (``PATH``, ``CUDA_VISIBLE_DEVICES``, ...) must not be replaced by the scheduler's.
    job_env: dict[str, str] = field(default_factory=dict)
    #: The job's secrets (its ``env_from``, resolved): added to its environment on top of the
    #: rest, and never written anywhere (not in a backend's records, not in the store).
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)
    #: The id of the store the job belongs to: a backend records it with the run, so that a
    #: run is never taken for another store's.
    store_id: str | None = None


class RunPhase(StrEnum):
    PENDING = "pending"  # accepted, waiting for resources or set-up (a cluster's queue)
    RUNNING = "running"
    EXITED = "exited"
    VANISHED = "vanished"  # neither running nor an exit status: the process was lost
    UNKNOWN = "unknown"  # the backend has no such run


@dataclass(frozen=True)
class RunState:
    phase: RunPhase
    #: The exit status; negative: killed by that signal.
    exit_code: int | None = None
    #: ``stop`` was called for this run (an exit then means Stopped, not Failed).
    stop_requested: bool = False
    #: ``stop`` was called because the run overstayed its maximum run time.
    timed_out: bool = False
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None


class Backend(Protocol):
    """Where runs happen: everything the steps, the manager and the CLI ask of one.

    ``launch`` raises ``CapacityError``, ``TransientLaunchError`` or ``InvalidJobError``
    (``streamfit.jobs.errors``); ``poll``, ``stop``, ``logs`` and the capacity may raise
    ``BackendUnavailable``. mypy checks every backend against this protocol (in
    ``streamfit.jobs.backends``), so a backend lacking a member fails there, not at run time.
    """

    #: Recorded with each job it launches (the ``backend`` column).
    name: str

    @property
    def capacity(self) -> Resources | None:
        """Everything it has for runs at once (a job asking more can never run there);
        None where it cannot say, and ``launch`` decides."""
        ...

    def free(self) -> Resources | None:
        """What is free for new runs now (None: cannot say). The launch step passes over the
        jobs that do not fit, without asking ``launch``."""
        ...

    def launch(self, request: RunRequest) -> str:
        """Start ``request`` (or find it running already); returns its reference."""
        ...

    def poll(self, ref: str) -> RunState:
        """How the run ``ref`` is doing; ``RunPhase.UNKNOWN`` if there is no such run."""
        ...

    def stop(self, ref: str, *, timed_out: bool = False) -> None:
        """Ask the run to stop (SIGTERM: a training job checkpoints, then exits)."""
        ...

    def logs(self, ref: str, tail_bytes: int | None = None) -> str:
        """The run's output (its last ``tail_bytes``); empty if there is none."""
        ...
