"""The local backend: detached runs, idempotent launch, capacity, stop, lost processes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streamfit.jobs.backends.base import RunPhase, RunRequest, RunState
from streamfit.jobs.backends.local import LocalBackend
from streamfit.jobs.errors import CapacityError, InvalidJobError
from streamfit.jobs.runs import classify, run_name
from streamfit.jobs.spec import Resources
from streamfit.jobs.status import FailureKind, Status


def _req(name: str, code: str, cpus: float = 1.0) -> RunRequest:
    return RunRequest(
        name, [sys.executable, "-c", code], dict(os.environ), None, Resources(cpus=cpus)
    )


def _wait(backend: LocalBackend, ref: str, phase: RunPhase, timeout: float = 30) -> RunState:
    deadline = time.monotonic() + timeout
    while True:
        state = backend.poll(ref)
        if state.phase == phase:
            return state
        assert time.monotonic() < deadline, f"{ref} still {state}"
        time.sleep(0.02)


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path, Resources(cpus=2, gpus=0, memory_mb=8000))


def test_a_run_records_its_output_and_exit_status(backend: LocalBackend) -> None:
    ref = backend.launch(_req("1-1", "print('hello'); raise SystemExit(7)"))
    state = _wait(backend, ref, RunPhase.EXITED)
    assert state.exit_code == 7 and not state.stop_requested
    assert "hello" in backend.logs(ref)
    assert backend.poll("nope").phase == RunPhase.UNKNOWN


def test_launching_the_same_name_twice_runs_it_once(backend: LocalBackend, tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    code = f"open({str(marker)!r}, 'a').write('x')"
    assert backend.launch(_req("1-1", code)) == backend.launch(_req("1-1", code)) == "1-1"
    _wait(backend, "1-1", RunPhase.EXITED)
    assert marker.read_text() == "x"
    assert backend.launched() == ["1-1"]


def test_capacity_errors_until_room_frees_up(backend: LocalBackend) -> None:
    ref = backend.launch(_req("1-1", "import time; time.sleep(30)", cpus=2))
    with pytest.raises(CapacityError, match="needs 1 CPUs"):
        backend.launch(_req("2-1", "pass"))
    backend.stop(ref)
    _wait(backend, ref, RunPhase.EXITED)
    assert backend.launch(_req("2-1", "pass")) == "2-1"
    with pytest.raises(InvalidJobError, match="asks for 3 CPUs"):
        backend.launch(_req("3-1", "pass", cpus=3))
    with pytest.raises(InvalidJobError, match="command not found"):
        backend.launch(RunRequest("4-1", ["no-such-program-x"], dict(os.environ)))


def test_stop_sends_sigterm_to_the_command_and_is_remembered(backend: LocalBackend) -> None:
    code = textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(75))
        print('ready', flush=True)
        time.sleep(60)
    """)
    ref = backend.launch(_req("1-1", code))
    deadline = time.monotonic() + 30
    while "ready" not in backend.logs(ref):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    backend.stop(ref)
    state = _wait(backend, ref, RunPhase.EXITED)
    assert state.exit_code == 75 and state.stop_requested
    assert classify(state, builtin=True).status == Status.STOPPED


def _child_pid(backend: LocalBackend, ref: str) -> int:
    deadline = time.monotonic() + 30
    while not (backend.runs / ref / "child.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return int(json.loads((backend.runs / ref / "child.json").read_text())["pid"])


def test_a_signal_nobody_asked_for_is_an_infrastructure_failure(backend: LocalBackend) -> None:
    ref = backend.launch(_req("1-1", "import time; time.sleep(60)"))
    child = _child_pid(backend, ref)
    os.kill(child, signal.SIGKILL)
    state = _wait(backend, ref, RunPhase.EXITED)
    assert state.exit_code == -signal.SIGKILL
    outcome = classify(state, builtin=True)
    assert (outcome.status, outcome.kind) == (Status.FAILED, FailureKind.INFRASTRUCTURE)
    assert "SIGKILL" in outcome.reason


def test_a_lost_supervisor_reads_as_vanished(backend: LocalBackend) -> None:
    ref = backend.launch(_req("1-1", "import time; time.sleep(60)"))
    child = _child_pid(backend, ref)
    supervisor = json.loads((backend.runs / ref / "supervisor.json").read_text())["pid"]
    os.kill(supervisor, signal.SIGKILL)
    os.kill(child, signal.SIGKILL)
    state = _wait(backend, ref, RunPhase.VANISHED)
    assert classify(state, builtin=False).kind == FailureKind.INFRASTRUCTURE


def test_runs_outlive_the_process_that_launched_them(backend: LocalBackend) -> None:
    launcher = textwrap.dedent(f"""
        import os, sys
        from streamfit.jobs.backends.local import LocalBackend
        from streamfit.jobs.spec import Resources
        from streamfit.jobs.backends.base import RunRequest
        b = LocalBackend({str(backend.root)!r}, Resources(cpus=2, gpus=0, memory_mb=8000))
        code = "import time; time.sleep(1); print('done')"
        b.launch(RunRequest("1-1", [sys.executable, "-c", code], dict(os.environ)))
    """)
    subprocess.run([sys.executable, "-c", launcher], check=True, timeout=60)
    state = _wait(backend, "1-1", RunPhase.EXITED)  # the launcher is long gone
    assert state.exit_code == 0 and "done" in backend.logs("1-1")


def test_a_stop_during_start_up_means_the_command_never_runs(
    backend: LocalBackend, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    ref = backend.launch(_req("1-1", f"open({str(marker)!r}, 'w')"))
    backend.stop(ref)  # at once: the supervisor is still starting
    state = _wait(backend, ref, RunPhase.EXITED)
    assert state.stop_requested
    assert classify(state, builtin=False).status == Status.STOPPED


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_secrets_reach_the_command_and_no_file(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "home", Resources(cpus=2, gpus=0, memory_mb=8000))
    marker = tmp_path / "made-by-the-job"
    code = (
        "import os, pathlib; print('got', os.environ['DB_PW'][::-1]);"
        f" print('supervisor var', 'STREAMFIT_RUN_SECRETS' in os.environ);"
        f" pathlib.Path({str(marker)!r}).write_text('x')"
    )
    env = {"PATH": os.environ["PATH"]}
    name = run_name("5" * 32, 1, 1)
    request = RunRequest(name, [sys.executable, "-c", code], env, secret_env={"DB_PW": "pa55"})
    old_umask = os.umask(0o022)
    try:
        ref = backend.launch(request)
    finally:
        os.umask(old_umask)
    state = _wait(backend, ref, RunPhase.EXITED)
    assert state.exit_code == 0, backend.logs(ref)
    assert backend.logs(ref) == "got 55ap\nsupervisor var False\n"
    for path in _files(backend.root):
        assert b"pa55" not in path.read_bytes(), path
    # Private: the runs folder and each run 0700, every file 0600 ...
    assert stat.S_IMODE(backend.runs.stat().st_mode) == 0o700
    assert stat.S_IMODE((backend.runs / ref).stat().st_mode) == 0o700
    names = {p.name for p in (backend.runs / ref).iterdir()}
    assert names >= {"request.json", "supervisor.json", "child.json", "output.log", "exit.json"}
    for path in (backend.runs / ref).iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # ... while what the command makes follows the scheduler's umask, not the supervisor's.
    assert stat.S_IMODE(marker.stat().st_mode) == 0o644


def test_a_run_of_another_store_is_never_taken_for_ours(tmp_path: Path) -> None:
    ours = LocalBackend(tmp_path, Resources(cpus=2, gpus=0, memory_mb=8000), store_id="a" * 32)
    theirs = LocalBackend(tmp_path, Resources(cpus=2, gpus=0, memory_mb=8000), store_id="b" * 32)
    name = run_name("b" * 32, 1, 1)  # as a store reset since would name its job 1 again
    ref = theirs.launch(RunRequest(name, [sys.executable, "-c", "pass"], dict(os.environ)))
    assert _wait(theirs, ref, RunPhase.EXITED).exit_code == 0
    state = ours.poll(ref)
    assert state.phase == RunPhase.UNKNOWN and "another store" in (state.error or "")
    with pytest.raises(InvalidJobError, match="a run of another store"):
        ours.launch(RunRequest(name, [sys.executable, "-c", "pass"], dict(os.environ)))
    # A run recorded before stores had ids (no store in its request) is still polled.
    old = LocalBackend(tmp_path, Resources(cpus=2, gpus=0, memory_mb=8000))
    legacy = old.launch(RunRequest("1-1", [sys.executable, "-c", "pass"], dict(os.environ)))
    assert _wait(ours, legacy, RunPhase.EXITED).exit_code == 0


def test_a_backend_creates_nothing_until_it_launches(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "home", Resources(cpus=2, gpus=0, memory_mb=8000))
    assert backend.free().cpus == 2 and backend.launched() == []
    assert backend.poll("1-1").phase == RunPhase.UNKNOWN and backend.logs("1-1") == ""
    assert not (tmp_path / "home").exists()
