"""The Ray backend: each attempt one job of the Ray Jobs API on a Ray cluster.

The attempt's run name (``<store id>-<job id>-<attempt>``, see ``streamfit.jobs.runs``) is
the Ray ``submission_id`` and the run's reference: launching it again (a scheduler that crashed
between launching and recording) finds the run Ray already has instead of starting a second
one, while two stores sharing a cluster (each has its own job 1), or a store and the reset one
after it, never meet: the name starts with the store's id, and the run's metadata records it
whole (``streamfit_store``), checked when it is polled. Ray keeps its jobs as long as the
cluster lives; a run the cluster no longer knows reads as unknown, an infrastructure failure
that is retried.

A job's secrets (its ``env_from``, resolved) go in the runtime environment of its own
submission only. **Ray's dashboard and Jobs API show a job's runtime environment to whoever
can reach them**: keep the dashboard on a private network, with Ray's token authentication on.

Paths are the scheduler's: a built-in job writes its output and checkpoints under
``$STREAMFIT_HOME/jobs/`` and the monitor reads ``metrics.json`` from there, so every node of
the cluster must see that folder at the same path (true of a single-machine cluster; on
several machines put the home on shared storage: NFS, a mounted bucket) and run the same
Python with streamfit installed (one image or virtualenv path on every node).

Why a stop was asked for (by the owner, or for overstaying ``max_runtime_seconds``) is kept in
``ROOT/stops/<run name>``: Ray records only that the job was stopped.

Ray is imported only when a cluster is first called: the job manager runs without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from streamfit.errors import ConfigError
from streamfit.jobs.backends.base import RunPhase, RunRequest, RunState
from streamfit.jobs.errors import (
    BackendUnavailable,
    CapacityError,
    InvalidJobError,
    JobError,
    TransientLaunchError,
)
from streamfit.jobs.spec import Resources

__all__ = ["ClusterRoom", "RayBackend", "classify_error"]

T = TypeVar("T")
_MB = 1 << 20
#: How long a cluster's resource report is reused within one scheduler pass.
_ROOM_TTL = 1.0
#: Ray's report of used resources is a few seconds old (its monitor refreshes every ~5 s).
#: A run submitted less than this long before the report was taken is not in it yet, so its
#: demand is subtracted here; compared across two clocks, so a skew shifts it a little.
_SETTLE = 2.0
_FORGET = 60.0
_STATUS_CODE = re.compile(r"status code (\d{3})")


def classify_error(exc: BaseException, *, launching: bool) -> JobError:
    """Map an exception from Ray's client or the dashboard into the job manager's tree.

    Unreachable (connection refused, timeouts, a server error): transient. A request the
    cluster refuses (4xx) at launch: this job can never run there.
    """
    if isinstance(exc, JobError):
        return exc
    code = _STATUS_CODE.search(str(exc))
    # Ray's client puts the server's whole traceback in the message: its last line says why.
    lines = [line for line in str(exc).splitlines() if line.strip(" .")]
    detail = lines[-1].strip() if lines else type(exc).__name__
    if code is not None:
        detail = f"HTTP {code.group(1)}: {detail}"
    text = f"Ray cluster {'unreachable' if isinstance(exc, OSError) else 'error'}: {detail}"
    if launching:
        if code is not None and 400 <= int(code.group(1)) < 500:
            return InvalidJobError(text)
        return TransientLaunchError(text)
    return BackendUnavailable(text)


def _not_found(exc: BaseException) -> bool:
    found = _STATUS_CODE.search(str(exc))
    return found is not None and found.group(1) == "404"


@dataclass(frozen=True)
class ClusterRoom:
    """Each live node's total and free resources, as the cluster last reported them."""

    totals: list[Resources]
    frees: list[Resources]
    at: float  # when the cluster measured it (the head node's clock)

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> ClusterRoom:
        """From the dashboard's ``/api/cluster_status`` (``usageByNode``: ``[used, total]``)."""
        report = status["data"]["clusterStatus"]
        totals, frees = [], []
        for usage in (report["loadMetricsReport"].get("usageByNode") or {}).values():
            used, total = _resources(usage, 0), _resources(usage, 1)
            totals.append(total)
            frees.append(total - used)
        return cls(totals, frees, float(report.get("time") or time.time()))


def _resources(usage: dict[str, list[float]], i: int) -> Resources:
    return Resources.model_construct(
        cpus=float(usage.get("CPU", [0.0, 0.0])[i]),
        gpus=int(usage.get("GPU", [0.0, 0.0])[i]),
        memory_mb=int(usage.get("memory", [0.0, 0.0])[i] // _MB),
    )


def entrypoint(request: RunRequest) -> str:
    """The shell line Ray runs: ``exec`` makes the command the process Ray watches and signals,
    so its exit status (or the signal that killed it) is the run's, as on the local backend."""
    line = "exec " + shlex.join(request.argv)
    return f"cd {shlex.quote(request.workdir)} && {line}" if request.workdir else line


class RayBackend:
    """Runs on the Ray cluster whose dashboard (Jobs API) is at ``address``.

    ``namespace``: put before run names to make the Ray ids (the names carry their store's
    id already: this is for runs named otherwise, as in tests). ``store_id``: the store whose
    runs these are; a run recorded by another store polls as unknown. ``stop_grace_seconds``:
    how long Ray waits after SIGTERM before SIGKILL, time enough for a training job to write
    its checkpoint.
    """

    name = "ray"

    def __init__(
        self,
        address: str,
        root: str | Path,
        *,
        namespace: str = "",
        stop_grace_seconds: float = 30.0,
        store_id: str | None = None,
    ) -> None:
        if importlib.util.find_spec("ray") is None:
            raise ConfigError("the ray backend needs Ray: pip install 'streamfit[ray]'")
        self.address = address if "://" in address else f"http://{address}"
        self.address = self.address.rstrip("/")
        self.stops = Path(root) / "stops"
        self.stops.mkdir(parents=True, exist_ok=True)
        self.prefix = f"{namespace}-" if namespace else ""
        self.stop_grace_seconds = stop_grace_seconds
        self.store_id = store_id
        self._client: Any = None
        self._room: tuple[float, ClusterRoom] | None = None
        self._recent: dict[str, tuple[float, Resources]] = {}  # run -> (submitted at, demand)

    # -- talking to the cluster -----------------------------------------------------------

    def _call(self, fn: Callable[[Any], T], *, launching: bool = False) -> T:
        """Run ``fn(client)``; every foreign exception leaves here mapped by classify_error."""
        try:
            if self._client is None:
                from ray.job_submission import JobSubmissionClient

                self._client = JobSubmissionClient(self.address)
            return fn(self._client)
        except Exception as exc:
            raise classify_error(exc, launching=launching) from exc

    def ref(self, name: str) -> str:
        """The Ray id of run ``name``; a reference (already prefixed) is left as it is."""
        return name if name.startswith(self.prefix) else self.prefix + name

    def _info(self, ref: str, *, launching: bool = False) -> Any | None:
        """Ray's ``JobDetails`` for ``ref``, or None if the cluster has no such job."""
        ref = self.ref(ref)

        def get(client: Any) -> Any:
            try:
                return client.get_job_info(ref)
            except RuntimeError as exc:
                if _not_found(exc):
                    return None
                raise

        return self._call(get, launching=launching)

    def room(self) -> ClusterRoom:
        """The cluster's resources per node (reused for ``_ROOM_TTL`` seconds)."""
        now = time.monotonic()
        if self._room is not None and now - self._room[0] < _ROOM_TTL:
            return self._room[1]
        # Through the Jobs client's own request: it carries the cluster's auth token, if any.
        response = self._call(lambda client: client._do_request("GET", "/api/cluster_status"))
        try:
            response.raise_for_status()
            room = ClusterRoom.from_status(response.json())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendUnavailable(f"Ray cluster: cannot read its resources: {exc}") from exc
        self._room = (now, room)
        return room

    # -- capacity (read by the launch step, to pass over jobs that cannot fit now) ---------

    @property
    def capacity(self) -> Resources:
        """The whole cluster's resources."""
        return Resources.total(self.room().totals)

    def free(self) -> Resources:
        """Free across the cluster, less what was submitted since the cluster last reported."""
        room = self.room()
        wall = time.time()
        pending = []
        for run, (submitted, want) in list(self._recent.items()):
            if wall - submitted > _FORGET:
                del self._recent[run]
            elif room.at < submitted + _SETTLE:
                pending.append(want)
        return Resources.total(room.frees) - Resources.total(pending)

    def _check_room(self, want: Resources) -> None:
        room = self.room()
        if not room.totals:  # a cluster just started (or its monitor restarting): ask later
            raise CapacityError("the Ray cluster reports no live nodes yet")
        if not any(want.fits_within(total) for total in room.totals):
            biggest = max(room.totals, key=lambda r: (r.cpus, r.gpus, r.memory_mb))
            raise InvalidJobError(f"asks for {want}; the Ray cluster's largest node has {biggest}")
        free = self.free()
        if not any(want.fits_within(node) for node in room.frees) or not want.fits_within(free):
            raise CapacityError(f"needs {want}; Ray cluster free {free}")

    # -- the protocol ---------------------------------------------------------------------

    def _other_store(self, info: Any) -> str | None:
        """The store id a run recorded, if it is not this backend's store."""
        recorded = (getattr(info, "metadata", None) or {}).get("streamfit_store")
        if self.store_id is None or not recorded or recorded == self.store_id:
            return None  # (runs made before stores had ids record none)
        return str(recorded)

    def launch(self, request: RunRequest) -> str:
        name, want = self.ref(request.name), request.resources
        info = self._info(name, launching=True)
        if info is not None:  # launched before: by us before a crash, or by another scheduler
            other = self._other_store(info)
            if other is not None:
                raise InvalidJobError(
                    f"the Ray job {name!r} is a run of another store ({other}), not of this one"
                )
            return name
        self._check_room(want)
        env = {
            "RAY_JOB_STOP_WAIT_TIME_S": f"{self.stop_grace_seconds:g}",
            **request.job_env,
            **request.secret_env,  # this submission's own runtime env (shown by the dashboard)
        }
        store = request.store_id or self.store_id or ""

        def submit(client: Any) -> None:
            try:
                client.submit_job(
                    entrypoint=entrypoint(request),
                    submission_id=name,
                    runtime_env={"env_vars": env},
                    metadata={"streamfit_run": request.name, "streamfit_store": store},
                    entrypoint_num_cpus=want.cpus,
                    entrypoint_num_gpus=want.gpus,
                    entrypoint_memory=want.memory_mb * _MB,
                )
            except RuntimeError as exc:
                if "already exists" not in str(exc):  # else: another scheduler was first
                    raise

        self._call(submit, launching=True)
        self._recent[name] = (time.time(), want)
        return name

    def poll(self, ref: str) -> RunState:
        ref = self.ref(ref)
        info = self._info(ref)
        if info is None:
            return RunState(RunPhase.UNKNOWN, error=f"the Ray cluster has no job {ref!r}")
        other = self._other_store(info)
        if other is not None:
            return RunState(
                RunPhase.UNKNOWN, error=f"the Ray job {ref!r} belongs to another store ({other})"
            )
        why = self._stop_reason(ref)
        flags: dict[str, Any] = {
            "stop_requested": why is not None and why != "timed-out",
            "timed_out": why == "timed-out",
            "started_at": info.start_time / 1000 if info.start_time else None,
        }
        status = str(getattr(info.status, "value", info.status))
        if status in ("PENDING", "RUNNING"):
            return RunState(RunPhase[status], **flags)
        ended = info.end_time / 1000 if info.end_time else None
        if status == "SUCCEEDED":
            return RunState(RunPhase.EXITED, exit_code=0, ended_at=ended, **flags)
        if status == "STOPPED":
            # Stopped through Ray by someone else (``ray job stop``) counts as asked for.
            flags["stop_requested"] = why != "timed-out"
            return RunState(RunPhase.EXITED, ended_at=ended, **flags)
        if info.driver_exit_code is not None:  # the command ran and exited (or was killed)
            return RunState(
                RunPhase.EXITED, exit_code=int(info.driver_exit_code), ended_at=ended, **flags
            )
        # No exit status: the driver, its node, or its set-up was lost.
        message = (info.message or "").strip().splitlines()
        error = f"{info.error_type or 'FAILED'}: {message[0] if message else 'no detail'}"
        return RunState(RunPhase.VANISHED, ended_at=ended, error=f"Ray: {error}", **flags)

    def stop(self, ref: str, *, timed_out: bool = False) -> None:
        ref = self.ref(ref)
        # The reason is written first, so a poll that sees the run stopped also sees why.
        before = self._stop_reason(ref)
        if timed_out or before is None:  # an overstay stays the reason once recorded
            (self.stops / ref).write_text("timed-out" if timed_out else "stop")

        def stop_job(client: Any) -> None:
            try:
                client.stop_job(ref)  # False if it has ended already: nothing to do
            except RuntimeError as exc:
                if not _not_found(exc):
                    raise

        try:
            self._call(stop_job)
        except BackendUnavailable:
            # Not asked after all: the monitor, seeing no stop requested, asks again.
            if before is None:
                (self.stops / ref).unlink(missing_ok=True)
            else:
                (self.stops / ref).write_text(before)
            raise

    def _stop_reason(self, ref: str) -> str | None:
        with contextlib.suppress(OSError):
            return (self.stops / ref).read_text().strip()
        return None

    def logs(self, ref: str, tail_bytes: int | None = None) -> str:
        ref = self.ref(ref)

        def get(client: Any) -> str:
            try:
                return str(client.get_job_logs(ref))
            except RuntimeError as exc:
                if _not_found(exc):
                    return ""
                raise

        text = self._call(get)
        if tail_bytes is None:
            return text
        return text.encode()[-tail_bytes:].decode("utf-8", errors="replace")
