"""From a job to a run, and from a run's end back to a job status.

``classify`` is the one place where exit statuses, signals and stop requests become
streamfit's statuses and failure kinds.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import SecretStr

from streamfit.errors import Retry, exit_status_of_code
from streamfit.jobs.backends.base import RunPhase, RunRequest, RunState
from streamfit.jobs.environment import inherited, resolve
from streamfit.jobs.status import FailureKind, Status
from streamfit.jobs.store import Event, Job

__all__ = [
    "Outcome",
    "attempt_refs",
    "classify",
    "error_signature",
    "job_paths",
    "launched_detail",
    "run_name",
    "run_request",
]

_LAUNCHED = "run "


def run_name(store_id: str, job_id: int, attempt: int) -> str:
    """An attempt's name at the backend, and its idempotency key: launching it twice runs
    once. It starts with the store's short id, so a store that was reset (ids from 1 again)
    or another store beside it can never take this run for one of its own.

    >>> run_name("3f9a1c2b4d5e6f708192a3b4c5d6e7f8", 12, 2)
    '3f9a1c2b-12-2'
    """
    return f"{store_id[:8]}-{job_id}-{attempt}"


def launched_detail(ref: str) -> str:
    """The detail of a Launched event: it records the run's reference for good."""
    return f"{_LAUNCHED}{ref}"


def attempt_refs(history: Iterable[Event]) -> dict[int, str]:
    """Each launched attempt's run reference, from the job's Launched events (the name it ran
    under, whatever the naming was then: stores made before run names carried their store's
    id have runs named ``<job id>-<attempt>``)."""
    refs = {}
    for event in history:
        detail = event.detail or ""
        if event.to_status == Status.LAUNCHED.value and detail.startswith(_LAUNCHED):
            refs[event.attempt] = detail.removeprefix(_LAUNCHED)
    return refs


def job_paths(job: Job, home: Path) -> tuple[Path, Path]:
    """The job's output and checkpoint folders; they belong to the job, not to an attempt."""
    folder = home / "jobs" / str(job.id)
    return folder / "output", folder / "checkpoints"


def _private_folder(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # made before by an older version, or with another umask


def run_request(
    job: Job,
    home: Path,
    store_id: str,
    secrets: Mapping[str, SecretStr] | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunRequest:
    """The attempt to launch for ``job``: ``streamfit train`` for a built-in, else its command.

    Its environment is the spec's ``env``, the job's ``STREAMFIT_*`` variables and the allowed
    part of ``environ`` (the scheduler's); ``env_from`` is resolved now, from files and
    ``secrets``, into :attr:`RunRequest.secret_env` (``InvalidJobError`` if it cannot be).
    A retried built-in job gets the same checkpoint folder, so it resumes where it stopped.
    """
    spec = job.spec_model()
    output, checkpoints = job_paths(job, home)
    _private_folder(home / "jobs")
    _private_folder(output.parent)
    secret_env = resolve(spec.env_from, secrets or {})
    own = {
        **spec.env,
        "STREAMFIT_JOB_ID": str(job.id),
        "STREAMFIT_ATTEMPT": str(job.attempt),
        "STREAMFIT_OUTPUT_DIR": str(output),
        "STREAMFIT_CHECKPOINT_DIR": str(checkpoints),
    }
    if spec.algorithm is not None:
        argv = [sys.executable, "-m", "streamfit", "train", spec.algorithm]
        for channel, uri in spec.inputs.items():
            argv += [f"--{channel}", uri]
        argv += [
            "--output",
            str(output),
            "--checkpoint-dir",
            str(checkpoints),
            "--checkpoint-seconds",
            f"{spec.checkpoint_seconds:g}",
            "--device",
            spec.device,
            "--no-progress",
        ]
        if spec.publish_every_seconds is not None:
            argv += ["--publish-every", f"{spec.publish_every_seconds:g}s"]
            argv += ["--keep-versions", str(spec.keep_versions)]
        for name, value in spec.hyperparameters.items():
            argv += ["--hp", f"{name}={value}"]
        if spec.sweep is not None:
            argv += ["--sweep", spec.sweep]
    else:
        assert spec.command is not None
        argv = list(spec.command)
    env = {**inherited(os.environ if environ is None else environ), **own}
    return RunRequest(
        run_name(store_id, job.id, job.attempt),
        argv,
        env,
        spec.workdir,
        spec.resources,
        job_env=own,
        secret_env=secret_env,
        store_id=store_id,
    )


class Outcome:
    """How a run ended, in streamfit's terms."""

    def __init__(self, status: Status, kind: FailureKind | None = None, reason: str = "") -> None:
        self.status = status
        self.kind = kind
        self.reason = reason

    def __repr__(self) -> str:
        return f"Outcome({self.status}, {self.kind}, {self.reason!r})"


def classify(state: RunState, builtin: bool, log_tail: str = "") -> Outcome:
    """The status a finished (or lost) run gives its job."""
    last = _last_line(log_tail)
    if state.timed_out:
        return Outcome(Status.FAILED, FailureKind.ALGORITHM, "exceeded max_runtime_seconds")
    if state.stop_requested:
        return Outcome(Status.STOPPED, None, "stopped on request")
    if state.phase in (RunPhase.VANISHED, RunPhase.UNKNOWN):
        return Outcome(Status.FAILED, FailureKind.INFRASTRUCTURE, state.error or "run lost")
    code = state.exit_code
    if code == 0:
        return Outcome(Status.COMPLETED)
    if code is None:
        return Outcome(Status.FAILED, FailureKind.INFRASTRUCTURE, "no exit status")
    if code < 0 or (not builtin and code > 128 and code - 128 in _SIGNALS):
        signum = -code if code < 0 else code - 128
        name = _SIGNALS.get(signum, f"signal {signum}")
        return Outcome(Status.FAILED, FailureKind.INFRASTRUCTURE, f"killed by {name}")
    if code in (126, 127):
        return Outcome(Status.FAILED, FailureKind.INVALID, state.error or last or "cannot run")
    # A built-in job's exit status says what happened (streamfit.errors.EXIT_STATUSES); the
    # job's own failures (1, diverged) are retried within its budget like any command's.
    known = exit_status_of_code(code) if builtin else None
    if known is not None and known.retry == Retry.FROM_CHECKPOINT:
        return Outcome(Status.FAILED, FailureKind.INFRASTRUCTURE, known.reason)
    if known is not None and known.retry == Retry.NEVER:
        what = known.reason
        return Outcome(Status.FAILED, FailureKind.INVALID, f"{what}: {last}" if last else what)
    return Outcome(
        Status.FAILED, FailureKind.ALGORITHM, f"exit status {code}" + (f": {last}" if last else "")
    )


_SIGNALS = {int(s): s.name for s in signal.Signals}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def error_signature(kind: str, reason: str) -> str:
    """A fingerprint of a failure that ignores numbers (times, pids, addresses), so the same
    error repeating is recognised as a crash loop."""
    normal = re.sub(r"0x[0-9a-f]+|\d+", "#", reason.lower())
    return hashlib.sha1(f"{kind}:{normal}".encode()).hexdigest()[:12]
