"""The Ray backend against a real single-node Ray cluster started for this test session.

The cluster is this session's own: its own temporary folder and free ports, so a cluster that
another test suite runs on this machine is neither reached nor stopped (``ray stop`` would
stop every Ray process on the machine; here only the processes started here are ended).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamfit.cli.main import cli
from streamfit.jobs.backends.base import RunPhase, RunRequest, RunState
from streamfit.jobs.backends.ray import RayBackend, classify_error, entrypoint
from streamfit.jobs.context import StepContext
from streamfit.jobs.errors import (
    BackendUnavailable,
    CapacityError,
    InvalidJobError,
    TransientLaunchError,
)
from streamfit.jobs.runs import run_name
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.spec import JobSpec, Resources
from streamfit.jobs.status import Status
from streamfit.jobs.store import Job, Store
from tests.conftest import BinaryFiles
from tests.jobs.conftest import command_spec

JobSubmissionClient = pytest.importorskip(
    "ray.job_submission"
).JobSubmissionClient  # streamfit[ray]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _our_processes(temp: Path, session: int) -> list[int]:
    """This cluster's processes: in the head command's session, or naming its folder."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                sid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])
                if sid == session or str(temp).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
    return found


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray is None:
        pytest.skip("no ray command next to this Python")
    # Short: Ray puts Unix sockets under it, and a socket path must fit in 107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="sfray-", dir="/tmp"))
    gcs, dashboard, client, agent = _free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # RAY_AUTH_MODE: unset, Ray turns token auth on whenever ~/.ray/auth_token exists (any
    # earlier ray.init() on this machine may have written one); this cluster listens on
    # 127.0.0.1 only.
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    log = (temp / "ray-start.log").open("wb")
    # --block: the command stays, owns the cluster's processes, and ends them on SIGTERM.
    head = subprocess.Popen(
        [
            ray,
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={agent}",
            "--num-cpus=2",
            "--num-gpus=0",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_until_jobs_run(address, head, temp)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
        for pid in _our_processes(temp, head.pid):  # anything the head left behind
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_until_jobs_run(address: str, head: subprocess.Popen[bytes], temp: Path) -> None:
    """The Jobs API answers only once the head's dashboard and its node agent are up: wait
    for a first job to succeed."""
    backend = RayBackend(address, temp / "probe")
    request = RunRequest("probe-1", ["true"], resources=Resources(cpus=0.1, memory_mb=1))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail("ray start failed:\n" + (temp / "ray-start.log").read_text()[-3000:])
        try:
            backend.launch(request)
            if backend.poll("probe-1").phase == RunPhase.EXITED:
                return
        except (TransientLaunchError, BackendUnavailable, CapacityError):
            pass
        time.sleep(0.5)
    pytest.fail("the Ray Jobs API did not come up:\n" + (temp / "ray-start.log").read_text())


@pytest.fixture
def ctx(tmp_path: Path, ray_address: str) -> StepContext:
    home = tmp_path / "home"
    store = Store.open(home)
    backend = RayBackend(
        ray_address, home / "ray", namespace=_namespace(), stop_grace_seconds=10, store_id=store.id
    )
    return StepContext(
        store,
        backend,
        home,
        rand=random.Random(0),
        capacity_backoff=0.05,
        capacity_backoff_max=0.2,
    )


def _namespace() -> str:
    """A namespace of its own for each test: every test's store numbers its jobs from 1."""
    return f"t{uuid.uuid4().hex[:8]}"


def _finish(ctx: StepContext, timeout: float = 90) -> list[Job]:
    scheduler = Scheduler(ctx, launch_interval=0.2, monitor_interval=0.2, retry_interval=0.2)
    assert scheduler.run_until(lambda: all(j.is_terminal for j in ctx.store.find()), timeout)
    return ctx.store.find()


def _wait(backend: RayBackend, ref: str, phase: RunPhase, timeout: float = 60) -> RunState:
    deadline = time.monotonic() + timeout
    while (state := backend.poll(ref)).phase != phase:
        assert time.monotonic() < deadline, f"{ref} still {state}"
        time.sleep(0.2)
    return state


def _req(name: str, code: str, cpus: float = 1.0) -> RunRequest:
    return RunRequest(name, [sys.executable, "-c", code], resources=Resources(cpus=cpus))


# -- through the scheduler -------------------------------------------------------------------


def test_a_builtin_job_trains_on_the_cluster_and_records_its_metrics(
    ctx: StepContext, binary_files: BinaryFiles
) -> None:
    spec = JobSpec.model_validate(
        {
            "name": "ll",
            "owner": "a@example.com",
            "algorithm": "linear-learner",
            "hyperparameters": {"predictor_type": "binary_classifier", "num_models": 2},
            "inputs": {
                "train": str(binary_files.train),
                "validation": str(binary_files.validation),
            },
        }
    )
    job_id = ctx.store.submit([spec], now=time.time()).job_ids[0]
    _finish(ctx, timeout=120)
    job = ctx.store.get(job_id)
    assert job.status == Status.COMPLETED, job.failure_reason
    run = run_name(ctx.store.id, job_id, 1)
    assert (job.backend, job.backend_ref) == ("ray", ctx.backend.ref(run))  # type: ignore[attr-defined]
    assert job.metrics is not None and job.metrics["train:rows"] == binary_files.n_train
    assert job.metrics["validation:roc_auc_score"] > 0.6
    # Ray ran exactly the argv the local backend would run.
    assert "-m streamfit train linear-learner" in ctx.backend.logs(run)


def test_failures_are_retried_and_classified(ctx: StepContext) -> None:
    broken, missing = ctx.store.submit(
        [
            command_spec("raise SystemExit('boom')", retry={"algorithm": 1, "backoff_seconds": 0}),
            JobSpec(name="x", owner="a@example.com", command=["no-such-program-x"]),
        ],
        now=time.time(),
    ).job_ids
    _finish(ctx)
    job = ctx.store.get(broken)
    assert (job.status, job.final, job.attempt) == (Status.FAILED, True, 2)
    assert job.failure_kind == "algorithm" and "boom" in (job.failure_reason or "")
    assert [to for _, to in _history(ctx, broken)].count("Launched") == 2
    job = ctx.store.get(missing)  # the shell's 127: never retried
    assert (job.status, job.failure_kind, job.attempt) == (Status.FAILED, "invalid", 1)


def _history(ctx: StepContext, job_id: int) -> list[tuple[str | None, str]]:
    return [(e.from_status, e.to_status) for e in ctx.store.events(job_id)]


def test_stop_requests_and_overstays_end_the_run(ctx: StepContext) -> None:
    graceful = textwrap.dedent("""
        import signal, sys, time
        def bye(*_):
            print('checkpointed on SIGTERM', flush=True)
            sys.exit(75)
        signal.signal(signal.SIGTERM, bye)
        time.sleep(60)
    """)
    stopped, overstayed = ctx.store.submit(
        [
            command_spec(graceful, name="stopped"),
            command_spec(
                "import time; time.sleep(60)",
                name="slow",
                max_runtime_seconds=1,
                retry={"algorithm": 0},
            ),
        ],
        now=time.time(),
    ).job_ids
    scheduler = Scheduler(ctx)
    assert scheduler.run_until(lambda: ctx.store.get(stopped).status == Status.IN_PROGRESS, 60)
    ctx.store.request_stop(stopped)
    _finish(ctx)
    assert ctx.store.get(stopped).status == Status.STOPPED
    assert "checkpointed on SIGTERM" in ctx.backend.logs(run_name(ctx.store.id, stopped, 1))
    job = ctx.store.get(overstayed)
    assert (job.status, job.final) == (Status.FAILED, True)
    assert "max_runtime_seconds" in (job.failure_reason or "")


def test_the_cli_runs_the_scheduler_against_the_cluster(tmp_path: Path, ray_address: str) -> None:
    home = tmp_path / "home"
    store = Store.open(home)
    job_id = store.submit([command_spec("print('from ray')")], now=time.time()).job_ids[0]
    store.close()
    env = {"STREAMFIT_HOME": str(home), "STREAMFIT_DATABASE_URL": None}
    args = ["scheduler", "tick", "--backend", "ray", "--ray-address", ray_address, "--json"]
    deadline = time.monotonic() + 60
    while True:
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        store = Store.open(home)
        job = store.get(job_id)
        store.close()
        if job.is_terminal or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (job.status, job.backend) == (Status.COMPLETED, "ray"), job.failure_reason
    result = CliRunner().invoke(
        cli,
        ["jobs", "logs", str(job_id)],
        env={**env, "STREAMFIT_BACKEND": "ray", "STREAMFIT_RAY_ADDRESS": ray_address},
    )
    assert "from ray" in result.output


# -- the backend alone -----------------------------------------------------------------------


def test_launching_the_same_name_again_finds_the_first_run(
    tmp_path: Path, ray_address: str
) -> None:
    marker = tmp_path / "starts"
    request = _req("1-1", f"open({str(marker)!r}, 'a').write('x'); print('ran')")
    namespace = _namespace()
    first = RayBackend(ray_address, tmp_path / "a", namespace=namespace)
    _wait_for_free_cpus(first, 2)
    assert first.launch(request) == f"{namespace}-1-1"
    # A scheduler that crashed after launching, before recording: a new one launches again.
    again = RayBackend(ray_address, tmp_path / "b", namespace=namespace).launch(request)
    assert again == f"{namespace}-1-1"
    state = _wait(first, "1-1", RunPhase.EXITED)
    assert state.exit_code == 0 and marker.read_text() == "x"
    assert first.logs("1-1").rstrip().endswith("ran")
    assert first.logs("1-1", tail_bytes=4) == "ran\n"
    assert first.poll("no-such-run").phase == RunPhase.UNKNOWN
    assert first.logs("no-such-run") == ""


def _wait_for_free_cpus(backend: RayBackend, cpus: float) -> None:
    """Until the cluster reports ``cpus`` free: its report is a few seconds behind."""
    deadline = time.monotonic() + 30
    while abs(backend.free().cpus - cpus) > 1e-9:
        assert time.monotonic() < deadline, f"the cluster never reported {cpus:g} CPUs free"
        time.sleep(0.5)


def test_capacity_errors_while_the_cluster_is_full(tmp_path: Path, ray_address: str) -> None:
    namespace = _namespace()
    backend = RayBackend(ray_address, tmp_path, namespace=namespace)
    _wait_for_free_cpus(backend, 2)  # the runs of the tests before have ended, and been seen to
    ref = backend.launch(_req("2-1", "import time; time.sleep(60)", cpus=2))
    try:
        # At once: the cluster's report does not show the run yet, this backend knows it.
        with pytest.raises(CapacityError, match="needs 1 CPUs"):
            backend.launch(_req("3-1", "pass"))
        # Another scheduler, which never saw the launch, waits for the cluster's report.
        other = RayBackend(ray_address, tmp_path, namespace=namespace)
        _wait_for_free_cpus(other, 0)
        with pytest.raises(CapacityError):
            other.launch(_req("3-1", "pass"))
        assert other.poll("3-1").phase == RunPhase.UNKNOWN  # not submitted
        # Submitted anyway (as another user of the cluster might): Ray queues it.
        queued = _req("3-1", "import time; time.sleep(60)")
        client = JobSubmissionClient(ray_address)
        client.submit_job(
            entrypoint=entrypoint(queued), submission_id=other.ref("3-1"), entrypoint_num_cpus=1
        )
        time.sleep(1)
        assert other.poll("3-1").phase == RunPhase.PENDING
        other.stop("3-1")  # Ray acts on it once the run is placed: when the room frees up
        backend.stop(ref)
        state = _wait(other, "3-1", RunPhase.EXITED)
        assert state.stop_requested and state.exit_code is None
        # More than any node has: never fits, so the job is invalid, not waiting.
        with pytest.raises(InvalidJobError, match="asks for 3 CPUs"):
            other.launch(_req("4-1", "pass", cpus=3))
    finally:
        backend.stop(ref)
    state = _wait(backend, ref, RunPhase.EXITED)
    assert state.stop_requested and not state.timed_out


def test_an_unreachable_cluster_is_a_transient_error(tmp_path: Path) -> None:
    (closed,) = _free_ports(1)
    backend = RayBackend(f"127.0.0.1:{closed}", tmp_path)
    with pytest.raises(TransientLaunchError, match="unreachable"):
        backend.launch(_req("1-1", "pass"))
    with pytest.raises(BackendUnavailable):
        backend.poll("1-1")
    with pytest.raises(BackendUnavailable):
        backend.free()


def test_foreign_errors_are_classified() -> None:
    refused = RuntimeError("Request failed with status code 400: Traceback\nValueError: bad\n.")
    assert isinstance(classify_error(refused, launching=True), InvalidJobError)
    assert "HTTP 400: ValueError: bad" in str(classify_error(refused, launching=True))
    broken = RuntimeError("Request failed with status code 500: oops")
    assert isinstance(classify_error(broken, launching=True), TransientLaunchError)
    assert isinstance(
        classify_error(ConnectionError("refused"), launching=True), TransientLaunchError
    )
    assert isinstance(classify_error(broken, launching=False), BackendUnavailable)


def test_secrets_reach_the_job_in_its_own_runtime_env(ctx: StepContext, tmp_path: Path) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text("ray-S3cret\n")
    code = "import os; print('got', os.environ['DB_PW'][::-1], 'SMTP' in str(os.environ))"
    spec = command_spec(code, env_from={"DB_PW": f"file:{pw}"}, resources={"cpus": 0.5})
    job_id = ctx.store.submit([spec], now=time.time()).job_ids[0]
    _finish(ctx)
    job = ctx.store.get(job_id)
    assert job.status == Status.COMPLETED, job.failure_reason
    assert "got terc3S-yar False" in ctx.backend.logs(job.backend_ref or "")
    for path in ctx.home.rglob("*"):
        assert not path.is_file() or b"ray-S3cret" not in path.read_bytes(), path


def test_a_run_of_another_store_is_never_taken_for_ours(tmp_path: Path, ray_address: str) -> None:
    namespace = _namespace()
    theirs = RayBackend(ray_address, tmp_path / "a", namespace=namespace, store_id="b" * 32)
    ours = RayBackend(ray_address, tmp_path / "b", namespace=namespace, store_id="a" * 32)
    _wait_for_free_cpus(theirs, 2)
    request = _req("1-1", "pass", cpus=0.5)
    ref = theirs.launch(request)
    _wait(theirs, ref, RunPhase.EXITED)
    state = ours.poll(ref)
    assert state.phase == RunPhase.UNKNOWN and "another store" in (state.error or "")
    with pytest.raises(InvalidJobError, match="a run of another store"):
        ours.launch(request)
