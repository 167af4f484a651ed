"""``streamfit jobs ...`` and ``streamfit scheduler ...`` against a real SQLite store under
``STREAMFIT_HOME`` and real detached processes run by the local backend."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamfit.jobs.store import Store
from tests.cli.home import Env, cli_json, home_env, run_cli

LIST_KEYS = {
    "id",
    "name",
    "owner",
    "status",
    "final",
    "attempt",
    "failure_kind",
    "created_at",
    "launched_at",
    "started_at",
    "ended_at",
}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    # Tiny jobs: not queued behind this machine's own capacity.
    yield from home_env(tmp_path, cpus=16, memory_mb=64000)


def _job(name: str, code: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "owner": f"{name}@example.com",
        "command": [sys.executable, "-c", code],
        **extra,
    }


def _write(path: Path, jobs: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump(jobs))
    return path


def _tick_until(
    env: Env, done: Callable[[dict[int, dict[str, Any]]], bool], timeout: float
) -> dict[int, dict[str, Any]]:
    """``scheduler tick`` until ``done(jobs by id)``; the jobs as ``jobs list --json`` has them."""
    deadline = time.monotonic() + timeout
    while True:
        cli_json(env, "scheduler", "tick")
        jobs = {j["id"]: j for j in cli_json(env, "jobs", "list")}
        if done(jobs):
            return jobs
        assert time.monotonic() < deadline, f"timed out; jobs: {jobs}"
        time.sleep(0.1)


def test_an_invalid_file_is_rejected_whole_naming_file_job_and_field(
    env: Env, tmp_path: Path
) -> None:
    good = _write(tmp_path / "good.yaml", [_job("fine", "pass")])
    bad = _write(
        tmp_path / "bad.yaml",
        [_job("also-fine", "pass"), {**_job("broken", "pass"), "owner": "not-an-email"}],
    )
    result = run_cli(env, "jobs", "submit", str(good), str(bad))
    assert result.exit_code == 2
    assert f"{bad}, job 2 ('broken'): owner:" in result.stderr
    assert "not-an-email" in result.stderr
    assert cli_json(env, "jobs", "list") == []  # not even the good file's job


def test_submit_list_show_run_logs_retry_and_stats(env: Env, tmp_path: Path) -> None:
    spec = _write(
        tmp_path / "sweep.yaml",
        [
            _job("hello", "print('hello from the job')", tags={"sweep": "s1"}),
            _job("quiet", "pass", tags={"sweep": "s1"}),
            _job(
                "crash",
                "import sys; print('boom'); sys.exit(3)",
                retry={"algorithm": 1, "backoff_seconds": 0},
                tags={"sweep": "s2"},
            ),
        ],
    )
    submitted = cli_json(env, "jobs", "submit", str(spec))
    assert submitted["jobs"] == [1, 2, 3] and len(submitted["submission"]) == 16
    text = run_cli(env, "jobs", "submit", str(_write(tmp_path / "one.yaml", [_job("x", "pass")])))
    assert text.exit_code == 0
    assert text.stdout.startswith("submission ") and text.stdout.endswith("1 job, id 4\n")
    assert run_cli(env, "jobs", "stop", "4").stdout == "job 4: stopped\n"  # before any launch

    listed = cli_json(env, "jobs", "list")
    assert [j["id"] for j in listed] == [4, 3, 2, 1]  # newest first
    assert all(set(j) == LIST_KEYS for j in listed)
    first = listed[-1]
    assert (first["name"], first["owner"], first["status"], first["attempt"]) == (
        "hello",
        "hello@example.com",
        "New",
        1,
    )
    assert first["final"] is False and first["launched_at"] is None
    assert dt.datetime.fromisoformat(first["created_at"]).utcoffset() == dt.timedelta(0)
    assert [j["id"] for j in cli_json(env, "jobs", "list", "--tag", "sweep=s1")] == [2, 1]
    assert [j["id"] for j in cli_json(env, "jobs", "list", "--owner", "crash@example.com")] == [3]
    assert [j["id"] for j in cli_json(env, "jobs", "list", "--status", "stopped")] == [4]
    sub = submitted["submission"]
    assert len(cli_json(env, "jobs", "list", "--submission", sub, "--limit", "2")) == 2

    jobs = _tick_until(env, lambda js: all(j["final"] for j in js.values()), timeout=30)
    assert [jobs[i]["status"] for i in (1, 2, 3)] == ["Completed", "Completed", "Failed"]
    assert jobs[3]["attempt"] == 2 and jobs[3]["failure_kind"] == "algorithm"
    assert all(jobs[i]["ended_at"] >= jobs[i]["started_at"] for i in (1, 2, 3))

    logs = run_cli(env, "jobs", "logs", "1")
    assert (logs.exit_code, logs.stdout) == (0, "hello from the job\n")
    assert run_cli(env, "jobs", "logs", "1", "--tail", "4").stdout == "job\n"
    assert run_cli(env, "jobs", "logs", "3", "--attempt", "1").stdout == "boom\n"

    shown = cli_json(env, "jobs", "show", "3")
    assert set(shown) >= LIST_KEYS
    assert {"spec", "attempts", "metrics", "failure_reason", "history"} <= set(shown)
    assert shown["spec"]["command"][-1] == "import sys; print('boom'); sys.exit(3)"
    assert shown["failure_reason"].startswith("exit status 3: boom")
    # (a run may also be seen InProgress on its way, depending on when the ticks fell)
    assert [e["to"] for e in shown["history"] if e["to"] != "InProgress"] == [
        "New",
        "Launched",
        "Failed",
        "New",  # retried: attempt 2
        "Launched",
        "Failed",
        "Failed",  # final: its algorithm budget is spent
    ]
    assert all(set(e) >= {"from", "to", "at", "detail"} for e in shown["history"])
    assert shown["history"][0]["detail"] == "submitted"
    store = Store.open(str(env["STREAMFIT_HOME"]), create=False)
    short = store.id[:8]
    store.close()
    assert [(a["attempt"], a["run"], a["status"]) for a in shown["attempts"]] == [
        (1, f"{short}-3-1", "Failed"),
        (2, f"{short}-3-2", "Failed"),
    ]
    assert all(a["failure_kind"] == "algorithm" for a in shown["attempts"])
    table = run_cli(env, "jobs", "show", "3")
    assert table.exit_code == 0 and "crash" in table.stdout and "history" in table.stdout
    assert "crash" in run_cli(env, "jobs", "list").stdout

    by_tag = cli_json(env, "jobs", "stats", "--by", "tag:sweep")
    assert [(g["group"], g["jobs"], g["completed"], g["failed"]) for g in by_tag] == [
        ("s1", 2, 2, 0),
        ("s2", 1, 0, 1),
        (None, 1, 0, 0),  # the stopped job
    ]
    assert by_tag[1]["failures"] == {"algorithm": 2} and by_tag[1]["retries"] == {"algorithm": 1}
    assert by_tag[0]["success_rate"] == 1.0 and by_tag[0]["run_time"]["n"] == 2
    (today,) = cli_json(env, "jobs", "stats", "--since", "1h")
    assert (today["jobs"], today["completed"], today["failed"], today["stopped"]) == (4, 2, 1, 1)
    stats = run_cli(env, "jobs", "stats", "--by", "owner")
    assert stats.exit_code == 0 and "hello@example.com" in stats.stdout

    retried = run_cli(env, "jobs", "retry", "3")
    assert retried.stdout == "job 3: attempt 3 queued\n"
    again = cli_json(env, "jobs", "show", "3")
    assert (again["status"], again["attempt"], again["final"]) == ("New", 3, False)
    assert again["history"][-1]["detail"] == "retry asked for"


def test_stop_a_running_job(env: Env, tmp_path: Path) -> None:
    spec = _write(tmp_path / "long.yaml", [_job("sleeper", "import time; time.sleep(60)")])
    (job_id,) = cli_json(env, "jobs", "submit", str(spec))["jobs"]
    _tick_until(env, lambda js: js[job_id]["status"] == "InProgress", timeout=30)
    stopped = run_cli(env, "jobs", "stop", str(job_id))
    assert stopped.exit_code == 0 and "stop requested" in stopped.stdout
    jobs = _tick_until(env, lambda js: js[job_id]["final"], timeout=30)
    assert jobs[job_id]["status"] == "Stopped"

    again = run_cli(env, "jobs", "stop", str(job_id))
    assert again.exit_code == 2 and "already Stopped" in again.stderr
    assert run_cli(env, "jobs", "retry", str(job_id)).exit_code == 0  # queued, not launched here


def test_errors_are_one_line_with_an_exit_code(env: Env, tmp_path: Path) -> None:
    db = Path(str(env["STREAMFIT_HOME"])) / "streamfit.db"
    for args in (["show", "42"], ["logs", "42"], ["stop", "42"], ["retry", "42"]):
        result = run_cli(env, "jobs", *args)
        assert (result.exit_code, result.stderr) == (2, f"error: no job 42: no store at {db} yet\n")
    assert not db.parent.exists()  # reading created nothing
    assert run_cli(env, "scheduler", "tick").exit_code == 0  # an empty store now
    for args in (["show", "42"], ["logs", "42"], ["stop", "42"], ["retry", "42"]):
        result = run_cli(env, "jobs", *args)
        assert (result.exit_code, result.stderr) == (2, "error: no job 42\n")
    assert run_cli(env, "jobs", "list", "--tag", "oops").exit_code == 2
    by_week = run_cli(env, "jobs", "stats", "--by", "week")
    assert (by_week.exit_code, by_week.stderr) == (
        2,
        "error: cannot group by 'week': use day, owner, share or tag:NAME\n",
    )
    assert run_cli(env, "jobs", "stats", "--since", "yesterday").exit_code == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "settings.yaml").write_text("launch_interval: -1\n")
    for args in (["jobs", "list"], ["scheduler", "tick"]):
        result = run_cli(env, *args, "--home", str(broken))
        assert result.exit_code == 2
        assert result.stderr.startswith("error: settings: launch_interval")
    tick = run_cli(env, "scheduler", "tick")  # an empty store: nothing to do
    assert tick.exit_code == 0 and tick.stdout.startswith("changed: monitor 0")


def test_home_option_overrides_the_environment(env: Env, tmp_path: Path) -> None:
    spec = _write(tmp_path / "one.yaml", [_job("x", "pass")])
    other = tmp_path / "other"
    assert cli_json(env, "jobs", "submit", str(spec), "--home", str(other))["jobs"] == [1]
    assert (other / "streamfit.db").is_file()
    assert cli_json(env, "jobs", "list") == []
    assert len(cli_json(env, "jobs", "list", "--home", str(other))) == 1


def test_scheduler_run_does_the_work_and_exits_cleanly_on_sigterm(env: Env, tmp_path: Path) -> None:
    spec = _write(tmp_path / "one.yaml", [_job("quick", "print('ok')")])
    (job_id,) = cli_json(env, "jobs", "submit", str(spec))["jobs"]
    child_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    with subprocess.Popen(
        [sys.executable, "-m", "streamfit", "scheduler", "run"],
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            deadline = time.monotonic() + 60
            while cli_json(env, "jobs", "show", str(job_id))["status"] != "Completed":
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the daemon did not run the job"
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr
    assert "started" in stderr and "stopped (SIGTERM)" in stderr


# -- secrets ---------------------------------------------------------------------------------

SMTP_PASSWORD = "smtp-Pa55word-4711"
SCHEDULER_TOKEN = "sched-T0ken-0815"  # a secret-looking variable of the scheduler's
FILE_SECRET = "file-S3cret-value"
SETTINGS_SECRET = "settings-S3cret-value"
ENV_SECRET = "env-S3cret-value"
SPEC_KEY = "spec-K3y-value"  # typed into the spec itself: stored, but never shown


def _scheduler_cli(env: Env, *args: str, **extra: str) -> str:
    """``streamfit ARGS`` as its own process, as a scheduler runs, with ``extra`` variables."""
    child = {k: v for k, v in {**os.environ, **env, **extra}.items() if v is not None}
    done = subprocess.run(
        [sys.executable, "-m", "streamfit", *args],
        check=False,
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_job_gets_its_secrets_and_nothing_of_the_schedulers(env: Env, tmp_path: Path) -> None:
    home = Path(str(env["STREAMFIT_HOME"]))
    home.mkdir()
    (home / "settings.yaml").write_text(yaml.safe_dump({"secrets": {"db": SETTINGS_SECRET}}))
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(FILE_SECRET + "\n")
    script = "env | sort; grep -r -e SMTP -e TOKEN -e SECRET_ \"$RUNS\" || echo 'nothing found'"
    spec = _write(
        tmp_path / "job.yaml",
        [
            {
                "name": "dump",
                "owner": "a@example.com",
                "command": ["sh", "-c", script],
                "env": {"RUNS": str(home / "runs"), "API_KEY": SPEC_KEY},
                "env_from": {
                    "FROM_FILE": f"file:{secret_file}",
                    "FROM_SETTINGS": "secret:db",
                    "FROM_ENV": "secret:hf",
                },
            }
        ],
    )
    (job_id,) = cli_json(env, "jobs", "submit", str(spec))["jobs"]
    scheduler_env = {
        "STREAMFIT_SMTP_PASSWORD": SMTP_PASSWORD,
        "MY_API_TOKEN": SCHEDULER_TOKEN,
        "STREAMFIT_SECRET_hf": ENV_SECRET,
    }
    deadline = time.monotonic() + 60
    while cli_json(env, "jobs", "show", str(job_id))["status"] != "Completed":
        assert time.monotonic() < deadline
        _scheduler_cli(env, "scheduler", "tick", **scheduler_env)
        time.sleep(0.1)
    shown = cli_json(env, "jobs", "show", str(job_id))
    (run,) = (home / "runs").iterdir()
    output = (run / "output.log").read_text()
    # The references reached the job ...
    for line in (f"FROM_FILE={FILE_SECRET}", f"FROM_SETTINGS={SETTINGS_SECRET}"):
        assert line in output.splitlines()
    assert f"FROM_ENV={ENV_SECRET}" in output.splitlines()
    assert "nothing found" in output
    # ... and nothing of the scheduler's: its secrets, its settings, its home.
    for leaked in (SMTP_PASSWORD, SCHEDULER_TOKEN, "STREAMFIT_SMTP", "STREAMFIT_HOME", "MY_API"):
        assert leaked not in output
    assert f"STREAMFIT_JOB_ID={job_id}" in output.splitlines()
    # No file under the home (store, request, logs...) holds a secret, but for the job's own
    # output, which holds what the job printed of its own.
    files = [p for p in home.rglob("*") if p.is_file() and p.name != "settings.yaml"]
    assert {"streamfit.db", "request.json", "output.log"} <= {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        assert SMTP_PASSWORD.encode() not in data and SCHEDULER_TOKEN.encode() not in data, path
        if path.name != "output.log":
            for value in (FILE_SECRET, SETTINGS_SECRET, ENV_SECRET):
                assert value.encode() not in data, path
    # Private files: the store, the runs and the job's folders.
    assert stat.S_IMODE((home / "streamfit.db").stat().st_mode) == 0o600
    for folder in (home / "runs", run, home / "jobs", home / "jobs" / str(job_id)):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for path in run.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # Shown masked: the logs, and the spec's secret-looking env; references as references.
    # (a named secret from a variable is masked where the process showing the logs has it)
    logs = run_cli({**env, "STREAMFIT_SECRET_hf": ENV_SECRET}, "jobs", "logs", str(job_id))
    for value in (FILE_SECRET, SETTINGS_SECRET, ENV_SECRET, SPEC_KEY):
        assert value not in logs.stdout
    assert "FROM_FILE=***" in logs.stdout and "FROM_ENV=***" in logs.stdout
    assert "API_KEY=***" in logs.stdout
    tail = run_cli(env, "jobs", "logs", str(job_id), "--tail", "200").stdout
    assert FILE_SECRET not in tail and SETTINGS_SECRET not in tail
    assert shown["spec"]["env"] == {"RUNS": str(home / "runs"), "API_KEY": "***"}
    assert shown["spec"]["env_from"] == {
        "FROM_FILE": f"file:{secret_file}",
        "FROM_SETTINGS": "secret:db",
        "FROM_ENV": "secret:hf",
    }
    text = run_cli(env, "jobs", "show", str(job_id)).stdout
    assert SPEC_KEY not in text and "API_KEY=***" in text and "FROM_SETTINGS=secret:db" in text


# -- stores that cannot be used -------------------------------------------------------------


def test_reading_commands_say_there_is_no_store_and_create_none(
    env: Env,
) -> None:
    home = Path(str(env["STREAMFIT_HOME"]))
    note = f"no jobs: no store at {home / 'streamfit.db'} yet\n"
    for args in (["list", "--json"], ["stats", "--json"]):
        result = run_cli(env, "jobs", *args)
        assert (result.exit_code, result.stdout, result.stderr) == (0, "[]\n", note)
    listed = run_cli(env, "jobs", "list")
    assert (listed.exit_code, listed.stdout, listed.stderr) == (0, "", note)
    assert not home.exists()


def test_a_deleted_store_is_an_error_not_a_fresh_start(env: Env, tmp_path: Path) -> None:
    """The issue's case: a store file deleted while runs exist; ids would start again at 1,
    and job 1 of the new store would be taken for the old job 1, its command never run."""
    home = Path(str(env["STREAMFIT_HOME"]))
    old = _write(tmp_path / "old.yaml", [_job("old", "print('old job ran')")])
    cli_json(env, "jobs", "submit", str(old))
    _tick_until(env, lambda js: js[1]["final"], timeout=30)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{home / 'streamfit.db'}{suffix}").unlink(missing_ok=True)
    new = _write(tmp_path / "new.yaml", [_job("new", "print('new job ran')")])
    for args in (
        ["jobs", "submit", str(new)],
        ["jobs", "list"],
        ["jobs", "show", "1"],
        ["jobs", "logs", "1"],
        ["jobs", "stats"],
        ["scheduler", "tick"],
    ):
        result = run_cli(env, *args)
        assert result.exit_code == 2, (args, result.output)
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"store error: {home / 'streamfit.db'} is missing, but ")
        assert "restore the file" in line and "to start a new, empty store" in line
    assert not (home / "streamfit.db").exists()
    # Moving the old runs away, as the message says, starts a new store; its job 1 runs.
    home.rename(tmp_path / "old-home")
    cli_json(env, "jobs", "submit", str(new))
    _tick_until(env, lambda js: js[1]["final"], timeout=30)
    assert run_cli(env, "jobs", "logs", "1").stdout == "new job ran\n"


def test_files_that_are_not_stores_are_one_line_errors(env: Env, tmp_path: Path) -> None:
    home = Path(str(env["STREAMFIT_HOME"]))
    home.mkdir()
    db = home / "streamfit.db"
    db.write_bytes(b"\x00garbage, not SQLite" * 300)
    spec = _write(tmp_path / "one.yaml", [_job("x", "pass")])
    for args in (["jobs", "list"], ["jobs", "submit", str(spec)], ["scheduler", "tick"]):
        result = run_cli(env, *args)
        assert result.exit_code == 2, result.output
        assert result.stderr == (
            f"store error: {db}: not a streamfit store (file is not a database): a corrupt "
            "file, or another kind of file; restore it from a backup, or move it away\n"
        )
    db.unlink()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    result = run_cli(env, "jobs", "list")
    assert (result.exit_code, result.stderr) == (
        2,
        f"store error: {db}: not a streamfit store (a database with other tables: invoices)\n",
    )


def _as_unprivileged(argv: list[str]) -> list[str]:
    """``argv`` run without the power to write what its modes forbid: as root, without
    CAP_DAC_OVERRIDE (root ignores file modes otherwise)."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file read-only to us")
    drop = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", *argv]


def _streamfit(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    child = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run(
        _as_unprivileged([sys.executable, "-m", "streamfit", *args]),
        check=False,
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_read_only_store_can_be_read_and_refuses_writes_clearly(env: Env, tmp_path: Path) -> None:
    home = Path(str(env["STREAMFIT_HOME"]))
    spec = _write(tmp_path / "one.yaml", [_job("x", "pass")])
    cli_json(env, "jobs", "submit", str(spec))
    db = home / "streamfit.db"
    run_cli(env, "jobs", "list")  # (a checkpoint of the WAL into the file on close)
    for mode_file, mode_folder, what in ((0o444, 0o755, "read-only"), (0o644, 0o555, "folder")):
        db.chmod(mode_file)
        home.chmod(mode_folder)
        try:
            submitted = _streamfit(env, "jobs", "submit", str(spec))
            ticked = _streamfit(env, "scheduler", "tick")
            listed = _streamfit(env, "jobs", "list", "--json")
        finally:
            db.chmod(0o600)
            home.chmod(0o700)
        for result in (submitted, ticked):
            assert result.returncode == 2, result.stderr
            (line,) = result.stderr.splitlines()
            assert line.startswith(f"store error: {db}") and what in line, line
        if what == "read-only":  # still listed: reading writes nothing
            assert listed.returncode == 0, listed.stderr
            assert [j["name"] for j in json.loads(listed.stdout)] == ["x"]
        else:  # SQLite cannot open its journal beside the file: a clear error too
            assert listed.returncode in (0, 2) and "Traceback" not in listed.stderr
    assert len(cli_json(env, "jobs", "list")) == 1


def test_scheduler_run_stops_when_its_store_file_is_deleted(env: Env, tmp_path: Path) -> None:
    home = Path(str(env["STREAMFIT_HOME"]))
    spec = _write(tmp_path / "one.yaml", [_job("quick", "print('ok')")])
    cli_json(env, "jobs", "submit", str(spec))
    child_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    with subprocess.Popen(
        [sys.executable, "-m", "streamfit", "scheduler", "run"],
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            deadline = time.monotonic() + 60
            while cli_json(env, "jobs", "show", "1")["status"] != "Completed":
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{home / 'streamfit.db'}{suffix}").unlink(missing_ok=True)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 2, stderr
    assert stderr.splitlines()[-1] == (
        f"store error: the store file {home / 'streamfit.db'} was deleted while in use: "
        "stopping, as nothing more could be recorded; restore the file, then start again"
    )
    assert "Traceback" not in stderr
    assert not (home / "streamfit.db").exists()


# -- stored text, printed ------------------------------------------------------------------------

HOSTILE_NAME = "[red]x\x1b[31m:smile:"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def test_stored_text_prints_escaped_and_as_written(env: Env, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from streamfit.jobs.tables import jobs

    spec = _write(tmp_path / "one.yaml", [_job("plain", "pass", tags={"k": "v"})])
    (job_id,) = cli_json(env, "jobs", "submit", str(spec))["jobs"]
    store = Store.open(str(env["STREAMFIT_HOME"]), create=False)
    try:  # rows that were stored before specs refused control characters
        with store.engine.begin() as conn:
            stored = conn.execute(sa.select(jobs.c.spec).where(jobs.c.id == job_id)).scalar_one()
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    name=HOSTILE_NAME,
                    owner="o\x1b]0;pwned\x07@example.com",
                    tags={"k": "[bold]v\x9b\u202e"},
                    status="Failed",
                    final=True,
                    failure_kind="algorithm",
                    failure_reason="first \x1b[2J\nsecond",
                    spec={**stored, "command": ["echo", "\x1b[31m"], "workdir": "/tmp/\x1b[5m"},
                )
            )
    finally:
        store.close()
    wide = {**env, "COLUMNS": "300"}  # one line a row: nothing wraps in the middle of a name
    listed = run_cli(wide, "jobs", "list").stdout
    shown = run_cli(wide, "jobs", "show", str(job_id)).stdout
    by_owner = run_cli(wide, "jobs", "stats", "--by", "owner").stdout
    by_tag = run_cli(wide, "jobs", "stats", "--by", "tag:k").stdout
    for out in (listed, shown, by_owner, by_tag):
        assert not any(raw in out for raw in RAW), out
    assert "[red]x\\x1b[31m:smile:" in listed  # markup and emoji codes as written
    assert "o\\x1b]0;pwned\\x07@example.com" in listed and "Failed" in listed
    assert f"{job_id} '[red]x\\x1b[31m:smile:'" in shown
    assert "k=[bold]v\\x9b\\u202e" in shown
    assert "echo '\\x1b[31m'" in shown and "/tmp/\\x1b[5m" in shown
    first, second = (line for line in shown.splitlines() if "first" in line or "second" in line)
    assert first.rstrip().endswith("first \\x1b[2J") and second.strip() == "second"
    assert "o\\x1b]0;pwned\\x07@example.com" in by_owner
    assert "[bold]v\\x9b\\u202e" in by_tag
    assert cli_json(env, "jobs", "show", str(job_id))["name"] == HOSTILE_NAME  # JSON: as stored


def test_an_empty_listing_is_a_sentence_not_an_empty_table(env: Env, tmp_path: Path) -> None:
    cli_json(env, "jobs", "submit", str(_write(tmp_path / "a.yaml", [_job("a", "print(1)")])))
    listed = run_cli(env, "jobs", "list", "--status", "Failed")
    assert (listed.exit_code, listed.stdout, listed.stderr) == (0, "", "no jobs match\n")
    assert "1 job" in run_cli(env, "jobs", "list").stdout


def test_stats_by_share_show_each_shares_weight_usage_and_jobs(env: Env, tmp_path: Path) -> None:
    home = Path(str(env["STREAMFIT_HOME"]))
    home.mkdir(parents=True)
    (home / "settings.yaml").write_text(
        "fair_share:\n  shares:\n    vision: {weight: 3, max_gpus: 2}\n"
    )
    specs = [_job("ann", "pass", share="vision"), _job("bob", "import time; time.sleep(0.3)")]
    assert run_cli(env, "jobs", "submit", str(_write(tmp_path / "j.yaml", specs))).exit_code == 0
    _tick_until(env, lambda jobs: all(j["final"] for j in jobs.values()), timeout=60)
    doc = cli_json(env, "jobs", "stats", "--by", "share")
    assert [g["group"] for g in doc["groups"]] == ["bob@example.com", "vision"]
    shares = {s["share"]: s for s in doc["shares"]}
    assert shares["vision"]["weight"] == 3 and shares["vision"]["caps"] == {"max_gpus": 2}
    assert shares["bob@example.com"]["usage"] > shares["vision"]["usage"] > 0
    assert shares["bob@example.com"]["running"] == 0
    text = run_cli(env, "jobs", "stats", "--by", "share").stdout
    assert "fair share now" in text and "2 GPUs" in text
    ann = next(j for j in cli_json(env, "jobs", "list") if j["name"] == "ann")
    shown = cli_json(env, "jobs", "show", str(ann["id"]))
    assert (shown["share"], shown["priority"], shown["preemptible"]) == ("vision", 0, False)
    assert "vision, priority 0" in run_cli(env, "jobs", "show", str(ann["id"])).stdout
