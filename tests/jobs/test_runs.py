"""From a job to a run: its name, its environment, its secrets, its folders."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from streamfit.jobs.errors import InvalidJobError
from streamfit.jobs.runs import attempt_refs, launched_detail, run_name, run_request
from streamfit.jobs.status import Status
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
