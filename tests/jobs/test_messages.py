"""What notifications say about jobs whose stored text is hostile: rows written before specs
refused control characters, put in the store directly. Subjects stay one line (no header
injection), bodies carry no escape sequences, webhook payloads keep the raw values."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator

import pytest

from streamfit.jobs.notify import ConsoleNotifier, EmailNotifier, Message
from streamfit.jobs.notify.messages import digest_content, job_content
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.store import Job, Store
from streamfit.jobs.tables import jobs
from streamfit.text import control_character

NAME = "evil\x1b[2J\r\nBcc: victim@example.com\u202e"
REASON = "Traceback:\n  \x1b[31mValueError\x1b[0m: boom\r\nX-Injected: 1"


@pytest.fixture
def store() -> Iterator[Store]:
    store = Store("sqlite://")
    yield store
    store.close()


def hostile_job(store: Store, status: str = "Failed") -> Job:
    spec = JobSpec(name="fine", owner="a@example.com", command=["true"])
    (job_id,) = store.submit([spec], now=0.0).job_ids
    with store.engine.begin() as conn:  # as an older version may have stored it
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(
                name=NAME,
                owner="o\x07wner@example.com",
                status=status,
                final=True,
                failure_kind="algo\x1brithm",
                failure_reason=REASON,
                metrics={"validation:auc\x1b[8m": 0.9},
            )
        )
    return store.get(job_id)


def test_a_failed_jobs_message_escapes_what_the_job_brought(store: Store) -> None:
    content = job_content(hostile_job(store))
    assert control_character(content.subject) is None
    assert content.subject.startswith("job 1 'evil\\x1b[2J\\r\\nBcc: victim@example.com\\u202e'")
    assert control_character(content.text, lines=True) is None
    assert "  \\x1b[31mValueError\\x1b[0m: boom\\r\nX-Injected: 1" in content.text  # lines kept
    assert "owner:      o\\x07wner@example.com" in content.text
    assert "failure:    algo\\x1brithm" in content.text
    assert content.payload["name"] == NAME  # JSON carries it safely


def test_a_completed_jobs_metrics_are_escaped(store: Store) -> None:
    content = job_content(hostile_job(store, status="Completed"))
    assert "validation:auc\\x1b[8m 0.9" in content.subject
    assert control_character(content.text, lines=True) is None


def test_a_digest_escapes_names_kinds_and_reasons(store: Store) -> None:
    job = hostile_job(store)
    content = digest_content(job.submission, [job])
    assert control_character(content.text, lines=True) is None
    assert "job 1 'evil\\x1b[2J\\r\\nBcc" in content.text and "algo\\x1brithm" in content.text


def test_an_email_from_a_hostile_name_has_no_injected_header(store: Store) -> None:
    content = job_content(hostile_job(store))
    notifier = EmailNotifier("localhost", sender="jobs@example.com")
    mail = notifier.compose(Message("n-1", "a@example.com", content.subject, content.text))
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    assert parsed.get_all("Subject") == [content.subject]
    body = parsed.get_body()
    assert body is not None and "\x1b" not in body.get_content()


def test_the_console_line_is_escaped(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    content = job_content(hostile_job(store))
    ConsoleNotifier().send(Message("n-1", "console", content.subject, content.text))
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and control_character(line.rstrip("\n")) is None
