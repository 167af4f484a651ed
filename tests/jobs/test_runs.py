"""From a job to a run: its name, its environment, its secrets, its folders; and from a run's
exit status back to the job's."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from streamfit.errors import EXIT_STATUSES, ExitStatus, Retry
from streamfit.jobs.backends.base import RunPhase, RunState
from streamfit.jobs.errors import InvalidJobError
from streamfit.jobs.runs import attempt_refs, classify, launched_detail, run_name, run_request
from streamfit.jobs.status import FailureKind, Status
from streamfit.jobs.store import Store
from tests.jobs.conftest import command_spec

SCHEDULER_ENV = {
    "PATH": "/usr/bin:/bin",
    "LC_ALL": "C",
    "STREAMFIT_HOME": "/srv/streamfit",
    "STREAMFIT_SMTP_PASSWORD": "smtp-pw",
    "STREAMFIT_DATABASE_URL": "postgresql://u:pw@db/sf",
    "STREAMFIT_SECRET_hf": "hf-abc",
    "MY_API_TOKEN": "tok",
}


@pytest.fixture
def store() -> Store:
    return Store("sqlite://")


def test_a_run_gets_its_spec_env_the_allow_list_and_its_secrets_apart(
    store: Store, tmp_path: Path
) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text("file-secret\n")
    spec = command_spec(
        "pass",
        env={"LR": "0.1", "PATH": "/opt/bin"},  # the spec's env wins over the scheduler's
        env_from={"DB_PW": f"file:{pw}", "HF": "secret:hf"},
    )
    job = store.get(store.submit([spec], now=0.0).job_ids[0])
    home = tmp_path / "home"
    request = run_request(job, home, store.id, {"hf": SecretStr("hf-abc")}, SCHEDULER_ENV)
    assert request.name == run_name(store.id, job.id, 1) == f"{store.id[:8]}-{job.id}-1"
    assert request.store_id == store.id
    output = home / "jobs" / str(job.id) / "output"
    assert request.env == {
        "PATH": "/opt/bin",
        "LC_ALL": "C",
        "LR": "0.1",
        "STREAMFIT_JOB_ID": str(job.id),
        "STREAMFIT_ATTEMPT": "1",
        "STREAMFIT_OUTPUT_DIR": str(output),
        "STREAMFIT_CHECKPOINT_DIR": str(output.with_name("checkpoints")),
    }
    assert request.secret_env == {"DB_PW": "file-secret", "HF": "hf-abc"}
    assert "hf-abc" not in repr(request) and "file-secret" not in repr(request)
    assert set(request.job_env) == {"LR", "PATH"} | {k for k in request.env if "STREAMFIT" in k}
    for folder in (home / "jobs", output.parent):  # private to the scheduler's user
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_an_unresolvable_reference_makes_the_request_invalid(store: Store, tmp_path: Path) -> None:
    spec = command_spec("pass", env_from={"HF": "secret:hf"})
    job = store.get(store.submit([spec], now=0.0).job_ids[0])
    with pytest.raises(InvalidJobError, match="env_from HF: no secret 'hf'"):
        run_request(job, tmp_path, store.id, {}, SCHEDULER_ENV)


def test_the_store_holds_the_reference_never_the_value(store: Store, tmp_path: Path) -> None:
    spec = command_spec("pass", env_from={"HF": "secret:hf"})
    job = store.get(store.submit([spec], now=0.0).job_ids[0])
    assert job.spec["env_from"] == {"HF": "secret:hf"}


def test_attempt_refs_come_from_the_launched_events(store: Store) -> None:
    job = store.get(store.submit([command_spec("pass")], now=0.0).job_ids[0])
    old = "1-1"  # a run named before run names carried their store's id
    job = store.transition(job, Status.LAUNCHED, 1.0, launched_detail(old), backend_ref=old)
    job = store.transition(job, Status.FAILED, 2.0, "boom")
    job = store.transition(job, Status.NEW, 3.0, "retry", attempt=2, backend_ref=None)
    new = run_name(store.id, job.id, 2)
    store.transition(job, Status.LAUNCHED, time.time(), launched_detail(new), backend_ref=new)
    assert attempt_refs(store.events(job.id)) == {1: old, 2: new}


@pytest.mark.parametrize("status", [s for _, s in EXIT_STATUSES], ids=lambda s: s.name)
def test_a_builtin_jobs_exit_status_says_whether_it_is_retried(status: ExitStatus) -> None:
    """``classify`` reads the table the CLI exits by: permanent codes are never retried, an
    interrupted run resumes from its checkpoint, the job's own failures use its budget."""
    ended = RunState(RunPhase.EXITED, exit_code=status.code)
    outcome = classify(ended, builtin=True, log_tail="reading...\nthe last line\n")
    kind = {
        Retry.NEVER: FailureKind.INVALID,
        Retry.FROM_CHECKPOINT: FailureKind.INFRASTRUCTURE,
        Retry.WITHIN_BUDGET: FailureKind.ALGORITHM,
    }[status.retry]
    assert (outcome.status, outcome.kind) == (Status.FAILED, kind)
    if status.retry == Retry.NEVER:
        assert outcome.reason == f"{status.reason}: the last line"
    elif status.retry == Retry.FROM_CHECKPOINT:
        assert outcome.reason == status.reason
    else:
        assert outcome.reason == f"exit status {status.code}: the last line"
    # Any other command's codes are its own: a failure of the job, retried within its budget.
    assert classify(ended, builtin=False).kind == FailureKind.ALGORITHM
