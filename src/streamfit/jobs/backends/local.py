"""The local backend: each attempt a detached process on this machine, within a capacity.

A run lives in ``ROOT/runs/<run name>/``: ``request.json`` (argv, environment less the
secrets, the store's id), ``supervisor.json`` (its supervisor's pid), ``child.json`` (the
command's pid), ``output.log``, and ``exit.json`` once the command has ended. Runs outlive the
scheduler that launched them. ``ROOT/active/`` holds one small file per run that still counts
against the capacity; launching happens under a file lock, so several schedulers on one machine
share one capacity and one run per name.

Run folders are the scheduler's user's alone (``runs/`` and each run 0700, files 0600). A job's
secrets (``RunRequest.secret_env``) go to its supervisor in the supervisor's own environment,
which only that user (and root) can read, and from there to the command: never to a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streamfit.jobs.backends.base import RunPhase, RunRequest, RunState
from streamfit.jobs.environment import inherited
from streamfit.jobs.errors import CapacityError, InvalidJobError, TransientLaunchError
from streamfit.jobs.spec import Resources

__all__ = ["LocalBackend", "machine_capacity"]

_SUPERVISOR = Path(__file__).with_name("supervise.py")
#: The supervisor's variable that carries the job's secrets (JSON); the command never sees it.
SECRETS_VARIABLE = "STREAMFIT_RUN_SECRETS"


def machine_capacity() -> Resources:
    """What this machine offers to runs at once: its cores, memory, and the GPUs
    ``CUDA_VISIBLE_DEVICES`` names."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = len([d for d in visible.split(",") if d.strip()]) if visible else 0
    return Resources(cpus=float(os.cpu_count() or 1), gpus=gpus, memory_mb=int(memory))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(doc))
    os.replace(tmp, path)


def _private_folder(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # made before by an older version, or with another umask


def _start_ticks(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(doc: dict[str, Any] | None) -> bool:
    """Whether the process a ``supervisor.json`` names still runs (same pid, same start)."""
    if doc is None:
        return False
    pid = int(doc["pid"])
    try:  # our own child (launched by this process): reap it if it has ended
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # launched by another process: init reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    recorded, now = doc.get("start_ticks"), _start_ticks(pid)
    return recorded is None or now is None or recorded == now


def _spawn_supervisor(run: Path, secret_env: dict[str, str]) -> None:
    """Start the run's supervisor in a session of its own and record it before returning,
    so a run is never seen half-born.

    ``posix_spawn`` starts it in well under a millisecond (a fork of a large scheduler takes
    ten), with SIGTERM and SIGINT held until it has its handlers, so a stop during its
    start-up is answered, never fatal to it. It stays this process's child until the
    scheduler exits (then init adopts it); ``_alive`` reaps it once it has ended.

    Its environment is the allowed part of the scheduler's (what Python needs to start) and
    the job's secrets, which it hands to the command.
    """
    devnull = os.devnull
    env = inherited(os.environ)
    if secret_env:
        env[SECRETS_VARIABLE] = json.dumps(secret_env)
    pid = os.posix_spawn(
        sys.executable,
        [sys.executable, "-I", str(_SUPERVISOR), str(run)],
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, devnull, os.O_WRONLY, 0),
        ],
        setsid=True,
        setsigmask={signal.SIGTERM, signal.SIGINT},
    )
    _write_json(run / "supervisor.json", {"pid": pid, "start_ticks": _start_ticks(pid)})


class LocalBackend:
    """Runs on this machine, within ``capacity`` (default: :func:`machine_capacity`).

    ``store_id``: the store whose runs these are. A run records the store id of its request;
    one recorded by another store polls as unknown, and is never launched over. Its folders
    are made at the first launch (reading a home changes nothing in it).
    """

    name = "local"

    def __init__(
        self,
        root: str | os.PathLike[str],
        capacity: Resources | None = None,
        *,
        store_id: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.active_dir = self.root / "active"
        self.capacity = capacity or machine_capacity()
        self.store_id = store_id

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private_folder(self.runs)
        _private_folder(self.active_dir)
        fd = os.open(self.root / "launch.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _other_store(self, run: Path) -> str | None:
        """The store id a run recorded, if it is not this backend's store."""
        recorded = (_read_json(run / "request.json") or {}).get("store")
        if self.store_id is None or recorded is None or recorded == self.store_id:
            return None  # (runs made before stores had ids record none)
        return str(recorded)

    # -- capacity ------------------------------------------------------------------------

    def used(self) -> Resources:
        """Resources of the runs that have not ended (ended ones are let go here)."""
        held = []
        entries = list(self.active_dir.iterdir()) if self.active_dir.is_dir() else []
        for entry in entries:
            name = entry.name.removesuffix(".json")
            if (self.runs / name / "exit.json").exists() or not (self.runs / name).exists():
                entry.unlink(missing_ok=True)
                continue
            doc = _read_json(entry) or {}
            held.append(
                Resources.model_construct(
                    cpus=float(doc.get("cpus", 0)),
                    gpus=int(doc.get("gpus", 0)),
                    memory_mb=int(doc.get("memory_mb", 0)),
                )
            )
        return Resources.total(held)

    def free(self) -> Resources:
        return self.capacity - self.used()

    # -- the protocol --------------------------------------------------------------------

    def launch(self, request: RunRequest) -> str:
        want = request.resources
        if not want.fits_within(self.capacity):
            raise InvalidJobError(f"asks for {want}; this machine has {self.capacity}")
        program = request.argv[0]
        if shutil.which(program, path=request.env.get("PATH")) is None:
            raise InvalidJobError(f"command not found: {program!r}")
        run = self.runs / request.name
        with self._locked():
            if run.exists():  # launched before (by us before a crash, or by another scheduler)
                other = self._other_store(run)
                if other is not None:
                    raise InvalidJobError(
                        f"{run} is a run of another store ({other}), not of this one "
                        f"({self.store_id}): move that store's runs away"
                    )
                return request.name
            used = self.used()
            if not (used + want).fits_within(self.capacity):
                cap = self.capacity
                raise CapacityError(
                    f"needs {want}; in use {used.cpus:g} of {cap.cpus:g} CPUs, {used.gpus} of "
                    f"{cap.gpus} GPUs, {used.memory_mb} of {cap.memory_mb} MB"
                )
            tmp = self.runs / f".{request.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(mode=0o700)
            _write_json(
                tmp / "request.json",
                {
                    "argv": request.argv,
                    "env": request.env,  # the secrets go to the supervisor another way
                    "workdir": request.workdir,
                    "store": request.store_id or self.store_id,
                    "launched_at": time.time(),
                },
            )
            tmp.rename(run)  # the run exists from here on: a second launch finds it
            _write_json(self.active_dir / f"{request.name}.json", want.model_dump())
            try:
                _spawn_supervisor(run, request.secret_env)
            except OSError as exc:
                # The run folder stays: polled, it reads as vanished, and the job is retried
                # under its next attempt's name; this name is never launched twice.
                raise TransientLaunchError(f"could not start the supervisor: {exc}") from exc
        return request.name

    def poll(self, ref: str) -> RunState:
        run = self.runs / ref
        if not run.exists():
            return RunState(RunPhase.UNKNOWN, error=f"no run {ref!r}")
        other = self._other_store(run)
        if other is not None:
            return RunState(
                RunPhase.UNKNOWN,
                error=f"run {ref!r} belongs to another store ({other}), not to this one",
            )
        stop = (run / "stop-requested").exists()
        timed_out = (run / "timed-out").exists()
        child = _read_json(run / "child.json") or {}
        started = child.get("started_at")
        done = _read_json(run / "exit.json")
        if done is None and _alive(_read_json(run / "supervisor.json")):
            return RunState(
                RunPhase.RUNNING, stop_requested=stop, timed_out=timed_out, started_at=started
            )
        done = done or _read_json(run / "exit.json")  # it may have ended just now
        if done is None:
            return RunState(
                RunPhase.VANISHED,
                stop_requested=stop,
                timed_out=timed_out,
                started_at=started,
                error="the run's process is gone, with no exit status",
            )
        return RunState(
            RunPhase.EXITED,
            exit_code=int(done["exit_code"]),
            stop_requested=stop,
            timed_out=timed_out,
            started_at=started,
            ended_at=done.get("ended_at"),
            error=done.get("error"),
        )

    def stop(self, ref: str, *, timed_out: bool = False) -> None:
        run = self.runs / ref
        if not run.exists():
            return
        (run / ("timed-out" if timed_out else "stop-requested")).touch(mode=0o600)
        # The supervisor passes the signal on to the command's process group, or holds it
        # until the command exists.
        supervisor = _read_json(run / "supervisor.json")
        if supervisor is not None and _alive(supervisor):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(supervisor["pid"]), signal.SIGTERM)

    def logs(self, ref: str, tail_bytes: int | None = None) -> str:
        path = self.runs / ref / "output.log"
        if not path.exists():
            return ""
        with path.open("rb") as f:
            if tail_bytes is not None:
                f.seek(max(0, path.stat().st_size - tail_bytes))
            return f.read().decode("utf-8", errors="replace")

    def launched(self) -> list[str]:
        """The names of every run this backend has (for tests and reconciliation)."""
        if not self.runs.is_dir():
            return []
        return sorted(p.name for p in self.runs.iterdir() if not p.name.startswith("."))
