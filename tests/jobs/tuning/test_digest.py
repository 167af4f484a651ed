"""A tuning job's digest: one message when it ends, sent by the notify step like any other."""

from __future__ import annotations

from typing import Any

from streamfit.jobs.notify import notify_step
from streamfit.jobs.notify.base import Message
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.tuning import Tunings, TuningStatus, budget, digest, trial_rows
from tests.jobs.conftest import Fake
from tests.jobs.tuning.test_controller import _script, _spec


class _Inbox:
    """A notifier that keeps what it is sent (the webhook's payload included)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.messages.append(message)


def test_the_digest_goes_out_once_with_the_best_trial(fake: Fake) -> None:
    fake.backend.script = _script(fail={"a"})
    tunings = Tunings(fake.ctx.store)
    tuning = tunings.create(_spec(retry={"algorithm": 0}), fake.clock.now())
    inbox = _Inbox()
    scheduler = Scheduler(fake.ctx, notify=lambda ctx: notify_step(ctx, {"console": inbox}))
    for _ in range(200):
        scheduler.tick()
        if tunings.get(tuning.id).final:
            break
        fake.clock.advance(1.0)
    for _ in range(3):  # the digest was recorded with the end: the next passes send it once
        scheduler.tick()
    done = tunings.get(tuning.id)
    assert done.status == TuningStatus.COMPLETED and done.best_params is not None
    [message] = inbox.messages  # the trials sent none of their own
    failed = done.failed
    assert message.subject.startswith(
        f"tuning job {done.id} 'sweep' Completed: 6 trials, {failed} failed, best "
        f"validation:score {done.best_value:.4g} with kind=b, x="
    )
    # (the failed trials recorded no rows: the budget counts the completed ones' 100 each)
    assert f"{100 * done.completed:,} rows read, 30 s of run time" in message.text
    payload: dict[str, Any] = message.payload
    assert payload["kind"] == "tuning" and payload["best_job_id"] == done.best_job_id
    assert payload["trials"] == 6 and payload["failed"] == failed


def test_trial_rows_sort_by_objective_and_sum_the_budget(fake: Fake) -> None:
    fake.backend.script = _script()
    tunings = Tunings(fake.ctx.store)
    spec = _spec(objective={"metric": "validation:score", "direction": "minimize"}, max_jobs=4)
    tuning = tunings.create(spec, fake.clock.now())
    scheduler = Scheduler(fake.ctx)
    for _ in range(100):
        scheduler.tick()
        if tunings.get(tuning.id).final:
            break
        fake.clock.advance(1.0)
    done = tunings.get(tuning.id)
    rows = trial_rows(done, tunings.rungs(done.id))
    values = [r.value for r in rows]
    assert values == sorted(values) and values[0] == done.best_value  # minimize: lowest first
    spent = budget(rows)
    assert spent.rows == 400 and spent.seconds == 4 * 5.0  # 5 s a run on the fake clock
    subject, text, _ = digest(done, tunings.rungs(done.id))
    assert "4 trials, 0 failed" in subject and "400 rows read, 20 s of run time" in text
