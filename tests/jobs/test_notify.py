"""The notify step end to end: a real store, a real SMTP server on loopback (aiosmtpd), a
real HTTP server for webhooks; time moves only on a FakeClock."""

from __future__ import annotations

import base64
import email
import email.policy
import io
import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from streamfit.jobs.backends.memory import MemoryBackend
from streamfit.jobs.clock import FakeClock
from streamfit.jobs.context import StepContext
from streamfit.jobs.notify import (
    ConsoleNotifier,
    DeliveryError,
    EmailNotifier,
    MemoryNotifier,
    Message,
    Notifier,
    WebhookNotifier,
    build_notifiers,
    notify_step,
)
from streamfit.jobs.notify.messages import digest_content, job_content
from streamfit.jobs.notify.step import message_id
from streamfit.jobs.runs import run_name
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import Status
from streamfit.jobs.store import Job, Store

SENDER = "jobs@example.com"
PASSWORD = "hunter2-s3cr3t!"
METRICS = {"train:objective_loss": 0.31, "validation:roc_auc_score": 0.93}


# -- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it receives; can be started and stopped."""

    port: int = field(default_factory=free_port)
    server_kwargs: dict[str, Any] = field(default_factory=dict)
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, **self.server_kwargs
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def by_recipient(self) -> dict[str, list[EmailMessage]]:
        out: dict[str, list[EmailMessage]] = {}
        for m in self.messages:
            out.setdefault(str(m["To"]), []).append(m)
        return out


@dataclass
class Hooks:
    """A webhook receiver: keeps (headers, JSON body); answers ``statuses`` in turn, then 200."""

    url: str = ""
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@pytest.fixture
def notify_smtp() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def notify_hooks() -> Iterator[Hooks]:
    hooks = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hooks.requests.append((dict(self.headers), json.loads(body)))
            status = hooks.statuses.pop(0) if hooks.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hooks.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/secret"
    yield hooks
    server.shutdown()
    server.server_close()
    thread.join()


# -- store, clock, jobs ----------------------------------------------------------------------


@pytest.fixture
def notify_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def notify_db(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
def notify_store(notify_db: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{notify_db}")
    yield store
    store.close()


def context(store: Store, clock: FakeClock, home: Path) -> StepContext:
    return StepContext(store, MemoryBackend(clock), home, clock)  # (notify polls no run)


@pytest.fixture
def notify_ctx(notify_store: Store, notify_clock: FakeClock, tmp_path: Path) -> StepContext:
    return context(notify_store, notify_clock, tmp_path)


def email_notifiers(box: Mailbox, **kwargs: Any) -> dict[str, Notifier]:
    notifiers = build_notifiers(Settings(home=Path("/nonexistent")))
    notifiers["email"] = EmailNotifier("127.0.0.1", box.port, SENDER, timeout=5, **kwargs)
    return notifiers


def submit(ctx: StepContext, n: int = 1, name: str = "lr-0.01", **notify: Any) -> list[Job]:
    names = [name] if n == 1 else [f"{name}-{i}" for i in range(n)]
    specs = [
        JobSpec(name=x, owner="alice@example.com", command=["true"], notify=notify)  # type: ignore[arg-type]
        for x in names
    ]
    sub = ctx.store.submit(specs, ctx.clock.now())
    return [ctx.store.get(i) for i in sub.job_ids]


def run(ctx: StepContext, job: Job) -> Job:
    now = ctx.clock.now()
    ref = run_name(ctx.store.id, job.id, job.attempt)
    job = ctx.store.transition(job, Status.LAUNCHED, now, "launched", backend_ref=ref)
    return ctx.store.transition(job, Status.IN_PROGRESS, now, "running", started_at=now)


def complete(ctx: StepContext, job: Job, metrics: dict[str, Any] | None = None) -> Job:
    job = run(ctx, job)
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    clock.advance(60)
    return ctx.store.transition(
        job,
        Status.COMPLETED,
        clock.now(),
        "exit status 0",
        ended_at=clock.now(),
        metrics=METRICS if metrics is None else metrics,
    )


def fail(ctx: StepContext, job: Job, attempts: int = 1, reason: str = "ValueError: boom") -> Job:
    """Fail every attempt, retrying in between; the last failure is final."""
    store, now = ctx.store, ctx.clock.now()
    for attempt in range(attempts):
        job = run(ctx, job)
        log = "\n".join(f"log line {i}" for i in range(30))
        job = store.transition(
            job,
            Status.FAILED,
            now,
            f"algorithm: {reason}",
            failure_kind="algorithm",
            failure_reason=f"{reason}\n--- last lines of the log ---\n{log}",
            ended_at=now,
        )
        if attempt < attempts - 1:
            job = store.transition(job, Status.NEW, now, "retry", attempt=job.attempt + 1)
    return store.transition(job, Status.FAILED, now, "final: budget spent", final=True)


def stop(ctx: StepContext, job: Job) -> Job:
    return ctx.store.transition(job, Status.STOPPED, ctx.clock.now(), "stopped before launch")


# -- per-job email and webhook -----------------------------------------------------------------


def test_email_arrives_once_per_terminal_event(
    notify_ctx: StepContext, notify_smtp: Mailbox
) -> None:
    notifiers = email_notifiers(notify_smtp)
    (job,) = submit(notify_ctx, email=["alice@example.com", "bob@example.com"])
    job = stop(notify_ctx, job)
    assert notify_step(notify_ctx, notifiers) == 4  # two rows recorded, two sent
    # Its owner runs it again and it completes: a second terminal event, new messages.
    job = notify_ctx.store.transition(job, Status.NEW, notify_ctx.clock.now(), "again", attempt=2)
    complete(notify_ctx, job)
    assert notify_step(notify_ctx, notifiers) == 4
    for _ in range(3):
        assert notify_step(notify_ctx, notifiers) == 0

    got = notify_smtp.by_recipient()
    assert sorted(got) == ["alice@example.com", "bob@example.com"]
    notes = notify_ctx.store.notifications(job_id=job.id)
    assert len(notes) == 4
    for note in notes:
        assert note.status == "sent" and note.attempts == 1 and note.sent_at is not None
    for recipient, (stopped, completed) in got.items():
        assert stopped["Subject"] == (
            f"job {job.id} 'lr-0.01' Stopped after 1 attempt: stopped before launch"
        )
        assert completed["Subject"] == (
            f"job {job.id} 'lr-0.01' Completed after 2 attempts: validation:roc_auc_score 0.93"
        )
        mine = [n for n in notes if n.recipient == recipient]
        assert [m["Message-ID"] for m in (stopped, completed)] == [
            f"<{message_id(n)}@example.com>" for n in mine
        ]
        assert completed["From"] == SENDER and completed["To"] == recipient
        assert "train:objective_loss 0.31" in completed.get_content()


def test_failure_email_has_kind_reason_and_log_lines(
    notify_ctx: StepContext, notify_smtp: Mailbox
) -> None:
    (job,) = submit(notify_ctx, email=["alice@example.com"])
    fail(notify_ctx, job, attempts=3)
    notify_step(notify_ctx, email_notifiers(notify_smtp))
    (msg,) = notify_smtp.messages
    assert (
        msg["Subject"]
        == f"job {job.id} 'lr-0.01' Failed (algorithm) after 3 attempts: ValueError: boom"
    )
    text = msg.get_content()
    assert "failure:    algorithm" in text
    assert "no retry:   budget spent" in text
    assert "log line 29" in text


def test_webhook_payload_and_idempotency_key(notify_ctx: StepContext, notify_hooks: Hooks) -> None:
    notifiers = build_notifiers(Settings(home=Path("/nonexistent")))
    ok, bad = submit(notify_ctx, 2, webhook=notify_hooks.url)
    complete(notify_ctx, ok)
    fail(notify_ctx, bad, attempts=2, reason="RuntimeError: " + "x" * 5000)

    assert notify_step(notify_ctx, notifiers) == 4
    assert notify_step(notify_ctx, notifiers) == 0
    assert len(notify_hooks.requests) == 2
    by_job = {body["job_id"]: (headers, body) for headers, body in notify_hooks.requests}

    headers, body = by_job[ok.id]
    (note,) = notify_ctx.store.notifications(job_id=ok.id)
    assert headers["Idempotency-Key"] == message_id(note) == body["notification_id"]
    assert headers["Content-Type"] == "application/json"
    assert body["text"].startswith(f"job {ok.id} 'lr-0.01-0' Completed after 1 attempt")
    assert body | {"text": None, "notification_id": None} == {
        "text": None,
        "notification_id": None,
        "kind": "job",
        "job_id": ok.id,
        "name": "lr-0.01-0",
        "owner": "alice@example.com",
        "submission": ok.submission,
        "status": "Completed",
        "attempt": 1,
        "failure_kind": None,
        "failure_reason": None,
        "metrics": METRICS,
    }

    _, body = by_job[bad.id]
    assert (body["status"], body["attempt"], body["failure_kind"]) == ("Failed", 2, "algorithm")
    assert body["failure_reason"].startswith("RuntimeError: xxx")
    assert len(body["failure_reason"]) <= 1000
    assert body["metrics"] is None


def test_webhook_non_2xx_is_retried_with_the_same_key(
    notify_ctx: StepContext, notify_hooks: Hooks, notify_clock: FakeClock
) -> None:
    notifiers = build_notifiers(Settings(home=Path("/nonexistent")))
    notify_hooks.statuses = [500, 302]
    (job,) = submit(notify_ctx, webhook=notify_hooks.url)
    complete(notify_ctx, job)

    for status in (500, 302):
        notify_step(notify_ctx, notifiers)
        (note,) = notify_ctx.store.notifications(job_id=job.id)
        assert note.status == "pending"
        assert note.last_error == f"webhook at 127.0.0.1 answered HTTP {status}"
        assert note.next_try_at > notify_clock.now()
        notify_clock.advance(700)
    notify_step(notify_ctx, notifiers)
    (note,) = notify_ctx.store.notifications(job_id=job.id)
    assert (note.status, note.attempts) == ("sent", 3)
    keys = {headers["Idempotency-Key"] for headers, _ in notify_hooks.requests}
    assert len(notify_hooks.requests) == 3 and keys == {message_id(note)}


def test_gives_up_after_max_attempts(
    notify_ctx: StepContext, notify_hooks: Hooks, notify_clock: FakeClock
) -> None:
    notifiers = build_notifiers(Settings(home=Path("/nonexistent")))
    notify_hooks.statuses = [503] * 10
    (job,) = submit(notify_ctx, webhook=notify_hooks.url)
    complete(notify_ctx, job)
    for _ in range(5):
        notify_step(notify_ctx, notifiers, max_attempts=3)
        notify_clock.advance(700)
    (note,) = notify_ctx.store.notifications(job_id=job.id)
    assert (note.status, note.attempts) == ("failed", 3)
    assert len(notify_hooks.requests) == 3


def test_on_failed_sends_nothing_for_completed(
    notify_ctx: StepContext, notify_smtp: Mailbox
) -> None:
    ok, bad = submit(notify_ctx, 2, on=["failed"], email=["alice@example.com"])
    complete(notify_ctx, ok)
    fail(notify_ctx, bad)
    notify_step(notify_ctx, email_notifiers(notify_smtp))
    assert notify_ctx.store.notifications(job_id=ok.id) == []
    assert [m["Subject"].split(" Failed")[0] for m in notify_smtp.messages] == [
        f"job {bad.id} 'lr-0.01-1'"
    ]
    assert notify_ctx.store.unnotified_final_events() == []


# -- digests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("one_pass", [False, True], ids=["pass-per-job", "all-in-one-pass"])
def test_digest_once_when_the_last_job_ends(
    notify_ctx: StepContext, notify_smtp: Mailbox, notify_hooks: Hooks, one_pass: bool
) -> None:
    notifiers = email_notifiers(notify_smtp)
    jobs = submit(
        notify_ctx,
        5,
        name="sweep",
        digest=True,
        email=["alice@example.com"],
        webhook=notify_hooks.url,
    )
    enders = [
        lambda j: complete(notify_ctx, j),
        lambda j: fail(notify_ctx, j, attempts=3, reason="ValueError: lr too high"),
        lambda j: complete(notify_ctx, j),
        lambda j: stop(notify_ctx, j),
        lambda j: complete(notify_ctx, j),
    ]
    for job, end in zip(jobs, enders, strict=True):
        end(job)
        if not one_pass:
            notify_step(notify_ctx, notifiers)
            if job is not jobs[-1]:
                assert notify_smtp.messages == [] and notify_hooks.requests == []
    for _ in range(2):
        notify_step(notify_ctx, notifiers)

    sub = jobs[0].submission
    notes = notify_ctx.store.notifications()
    assert {(n.key, n.channel, n.status) for n in notes} == {
        (f"digest:{sub}", "email", "sent"),
        (f"digest:{sub}", "webhook", "sent"),
    }
    assert len(notes) == 2
    (msg,) = notify_smtp.messages
    assert msg["Subject"] == (
        f"submission {sub} (5 jobs): 3 completed, 1 failed after 3 attempts, 1 stopped"
    )
    assert f"job {jobs[1].id} 'sweep-1' algorithm: ValueError: lr too high" in msg.get_content()
    ((_, body),) = notify_hooks.requests
    assert body["counts"] == {"completed": 3, "failed": 1, "stopped": 1}
    assert [f["job_id"] for f in body["failures"]] == [jobs[1].id]


def test_digest_on_failed_only_is_quiet_when_all_succeed(
    notify_ctx: StepContext, notify_smtp: Mailbox
) -> None:
    for job in submit(notify_ctx, 3, digest=True, on=["failed"], email=["alice@example.com"]):
        complete(notify_ctx, job)
    assert notify_step(notify_ctx, email_notifiers(notify_smtp)) == 0
    assert notify_smtp.messages == [] and notify_ctx.store.unnotified_final_events() == []


def test_two_schedulers_and_repeated_steps_never_send_twice(
    notify_db: Path, notify_clock: FakeClock, notify_smtp: Mailbox, tmp_path: Path
) -> None:
    stores = [Store(f"sqlite:///{notify_db}") for _ in range(2)]
    try:
        ctxs = [context(s, notify_clock, tmp_path) for s in stores]
        single = submit(ctxs[0], 6, name="single", email=["alice@example.com", "bob@example.com"])
        digest = submit(ctxs[0], 6, name="digest", digest=True, email=["carol@example.com"])
        for job in single + digest:
            complete(ctxs[0], job)
        notifiers = email_notifiers(notify_smtp)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def scheduler(ctx: StepContext) -> None:
            try:
                barrier.wait()
                for _ in range(3):
                    notify_step(ctx, notifiers, limit=4)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=scheduler, args=(c,)) for c in ctxs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for ctx in ctxs:
            notify_step(ctx, notifiers)
    finally:
        for s in stores:
            s.close()

    ids = [m["Message-ID"] for m in notify_smtp.messages]
    assert len(ids) == 6 * 2 + 1 == len(set(ids))
    assert len(notify_smtp.by_recipient()["carol@example.com"]) == 1


# -- failures of delivery -------------------------------------------------------------------------


def test_smtp_down_then_up_delivers_once(notify_ctx: StepContext, notify_clock: FakeClock) -> None:
    box = Mailbox()  # not started yet: nothing listens on its port
    notifiers = email_notifiers(box)
    (job,) = submit(notify_ctx, email=["alice@example.com"])
    complete(notify_ctx, job)

    assert notify_step(notify_ctx, notifiers) == 1  # recorded, not sent
    (note,) = notify_ctx.store.notifications(job_id=job.id)
    assert (note.status, note.attempts) == ("pending", 1)
    assert note.last_error is not None and "Connection refused" in note.last_error
    assert notify_clock.now() + 2.5 <= note.next_try_at <= notify_clock.now() + 5

    box.start()
    try:
        assert notify_step(notify_ctx, notifiers) == 0  # not due yet
        notify_clock.advance(5)
        assert notify_step(notify_ctx, notifiers) == 1
        notify_clock.advance(3600)
        assert notify_step(notify_ctx, notifiers) == 0
    finally:
        box.stop()
    (msg,) = box.messages
    (note,) = notify_ctx.store.notifications(job_id=job.id)
    assert (note.status, note.attempts) == ("sent", 2)
    assert msg["Message-ID"] == f"<{message_id(note)}@example.com>"


def test_a_send_interrupted_by_a_crash_is_sent_again_after_the_lease(
    notify_ctx: StepContext, notify_clock: FakeClock, notify_smtp: Mailbox
) -> None:
    notifiers = email_notifiers(notify_smtp)
    (job,) = submit(notify_ctx, email=["alice@example.com"])
    complete(notify_ctx, job)
    notify_step(notify_ctx, {})  # recorded only (no notifiers)
    (note,) = notify_ctx.store.notifications(job_id=job.id)
    # A sender claims it and dies before marking it sent.
    now = notify_clock.now()
    assert notify_ctx.store.mark_notification(
        note, "sending", now, attempts=1, next_try_at=now + 300
    )

    assert notify_step(notify_ctx, notifiers) == 0  # the claim still holds
    notify_clock.advance(301)
    assert notify_step(notify_ctx, notifiers) == 1
    (note,) = notify_ctx.store.notifications(job_id=job.id)
    assert (note.status, note.attempts) == ("sent", 2)
    assert len(notify_smtp.messages) == 1


def test_email_without_smtp_settings_stays_pending(
    notify_ctx: StepContext, notify_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    notifiers = build_notifiers(Settings(home=Path("/nonexistent")))
    assert "email" not in notifiers
    (job,) = submit(notify_ctx, email=["alice@example.com"], console=True)
    complete(notify_ctx, job)
    for _ in range(3):
        notify_step(notify_ctx, notifiers)
        notify_clock.advance(120)

    notes = {n.channel: n for n in notify_ctx.store.notifications(job_id=job.id)}
    assert notes["console"].status == "sent"
    mail = notes["email"]
    assert (mail.status, mail.attempts) == ("pending", 0)
    assert mail.last_error is not None and "smtp_host" in mail.last_error
    err = capsys.readouterr().err
    assert (
        err == f"[streamfit] job {job.id} 'lr-0.01' Completed after 1 attempt: "
        "validation:roc_auc_score 0.93\n"
    )


# -- STARTTLS, login, and the password -------------------------------------------------------------


def check_login(box: Mailbox) -> Any:
    """An aiosmtpd authenticator that takes bob with PASSWORD and records the login."""

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        if auth_data.password == PASSWORD.encode():
            box.logins.append(f"{auth_data.login.decode()} by {mechanism}")
            return AuthResult(success=True, auth_data=auth_data.login.decode())
        # A careless server that echoes what it was sent: our errors must not repeat it.
        sent = auth_data.password.decode()
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad password {sent!r}")

    return authenticate


@pytest.fixture(scope="module")
def notify_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("starttls", [False, True], ids=["plain", "starttls"])
def test_login_uses_the_password_and_never_leaks_it(
    notify_ctx: StepContext,
    notify_clock: FakeClock,
    notify_db: Path,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
    starttls: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    box = Mailbox()
    kwargs: dict[str, Any] = {"authenticator": check_login(box), "auth_require_tls": starttls}
    client_tls = None
    if starttls:
        cert, key = request.getfixturevalue("notify_cert")
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        kwargs.update(tls_context=server_tls, require_starttls=True)
        client_tls = ssl.create_default_context(cafile=str(cert))
    box.server_kwargs = kwargs
    box.start()
    try:
        (job,) = submit(notify_ctx, email=["alice@example.com"])
        complete(notify_ctx, job)
        wrong = "wrong-" + PASSWORD
        notifiers = email_notifiers(
            box, user="bob", password=SecretStr(wrong), starttls=starttls, tls_context=client_tls
        )
        notify_step(notify_ctx, notifiers)
        (note,) = notify_ctx.store.notifications(job_id=job.id)
        assert note.status == "pending" and box.messages == []
        assert note.last_error is not None and "535" in note.last_error
        assert "[redacted]" in note.last_error
        with pytest.raises(DeliveryError) as info:  # nothing of smtplib's is attached to it
            notifiers["email"].send(Message("n-1", "alice@example.com", "s", "t"))
        assert info.value.__context__ is None and info.value.__cause__ is None
        assert wrong not in str(info.value)

        notifiers = email_notifiers(
            box, user="bob", password=SecretStr(PASSWORD), starttls=starttls, tls_context=client_tls
        )
        notify_clock.advance(10)
        assert notify_step(notify_ctx, notifiers) == 1
    finally:
        box.stop()
    assert len(box.messages) == 1
    assert box.logins == ["bob by PLAIN"]
    assert "hunter2" not in repr(notifiers["email"])

    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("streamfit"))
    stored = b"".join(p.read_bytes() for p in notify_db.parent.glob(notify_db.name + "*"))
    for secret in (PASSWORD, wrong):
        forms = [secret, base64.b64encode(f"\0bob\0{secret}".encode()).decode()]
        for form in forms:
            assert form not in (note.last_error or "")
            assert form not in ours
            assert form.encode() not in stored


def test_scrub_removes_every_form_of_the_password() -> None:
    notifier = EmailNotifier("localhost", user="bob", password=SecretStr(PASSWORD))
    plain = base64.b64encode(f"\0bob\0{PASSWORD}".encode()).decode()
    login = base64.b64encode(PASSWORD.encode()).decode()
    text = notifier.scrub(f"x {PASSWORD} y {plain} z {login}")
    assert text == "x [redacted] y [redacted] z [redacted]"
    assert PASSWORD not in repr(notifier)


# -- messages -------------------------------------------------------------------------------------


def test_fakes_and_a_failing_notifier(notify_ctx: StepContext, notify_clock: FakeClock) -> None:
    email, hook = MemoryNotifier("email", fail=1), MemoryNotifier("webhook")
    (job,) = submit(notify_ctx, email=["alice@example.com"], webhook="https://example.com/h")
    fail(notify_ctx, job)
    assert notify_step(notify_ctx, {"email": email, "webhook": hook}) == 3
    (note,) = notify_ctx.store.notifications(status="pending")
    assert note.last_error == "email: refused (a fake failure)"
    notify_clock.advance(5)
    assert notify_step(notify_ctx, {"email": email, "webhook": hook}) == 1
    assert [m.id for m in email.sent] == [message_id(note)]
    assert hook.sent[0].payload["failure_kind"] == "algorithm"


def test_console_prints_one_line() -> None:
    out = io.StringIO()
    ConsoleNotifier(out).send(Message("n-1", "console", "job 1 'a'\nFailed", "text"))
    assert out.getvalue() == "[streamfit] job 1 'a' Failed\n"


def test_webhook_refuses_other_schemes() -> None:
    with pytest.raises(Exception, match="not an http"):
        WebhookNotifier().send(Message("n-1", "file:///etc/passwd", "s", "t"))


def test_digest_lists_failures_with_a_range_of_attempts(notify_ctx: StepContext) -> None:
    jobs = submit(notify_ctx, 4, name="d", digest=True)
    complete(notify_ctx, jobs[0])
    fail(notify_ctx, jobs[1], attempts=1, reason="OSError: disk full\nmore")
    fail(notify_ctx, jobs[2], attempts=3)
    complete(notify_ctx, jobs[3])
    content = digest_content("abc", [notify_ctx.store.get(j.id) for j in jobs])
    assert content.subject == "submission abc (4 jobs): 2 completed, 2 failed after 1-3 attempts"
    assert f"  job {jobs[1].id} 'd-1' algorithm: OSError: disk full\n" in content.text
    job = notify_ctx.store.get(jobs[0].id)
    assert job_content(job).payload["metrics"] == METRICS
