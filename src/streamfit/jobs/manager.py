"""The job manager assembled from settings: store, backend, steps and scheduler.

A home of its own (settings from the environment otherwise: ``$STREAMFIT_HOME``, SQLite,
runs as local processes), one job, and the scheduler ticking until it ends:

>>> import tempfile
>>> from streamfit.jobs.settings import Settings
>>> from streamfit.jobs.spec import JobSpec
>>> from streamfit.jobs.status import TERMINAL
>>> settings = Settings.load(env={}, home=tempfile.mkdtemp(), capacity_cpus=1)
>>> manager = JobManager.open(settings, notifiers={})
>>> spec = JobSpec.model_validate({"name": "hello", "owner": "me@example.com",
...                                "command": ["true"]})
>>> [job_id] = manager.submit([spec]).job_ids
>>> manager.scheduler().run_until(lambda: manager.store.get(job_id).status in TERMINAL, 60)
True
>>> manager.store.get(job_id).status.value
'Completed'
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from streamfit.errors import ConfigError
from streamfit.jobs.backends.base import Backend
from streamfit.jobs.backends.local import LocalBackend, machine_capacity
from streamfit.jobs.clock import Clock, SystemClock
from streamfit.jobs.context import StepContext
from streamfit.jobs.environment import masked_tail, secret_values
from streamfit.jobs.errors import TransitionError
from streamfit.jobs.notify import Notifier, build_notifiers, notify_step
from streamfit.jobs.runs import attempt_refs, run_name
from streamfit.jobs.scheduler import Scheduler
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.status import ACTIVE, Status
from streamfit.jobs.store import Failures, Job, Store, Submission

__all__ = ["JobManager", "open_backend"]


def open_backend(settings: Settings, store_id: str | None = None) -> Backend:
    """The backend the settings name: this machine's processes, or a Ray cluster; for the
    runs of the store ``store_id``."""
    if settings.backend == "ray":
        if not settings.ray_address:
            raise ConfigError(
                "the ray backend needs the cluster's dashboard address: --ray-address or "
                "STREAMFIT_RAY_ADDRESS (e.g. http://127.0.0.1:8265)"
            )
        from streamfit.jobs.backends.ray import RayBackend  # Ray is an optional extra

        # Job ids start again at 1 in every store: run names begin with the store's id, which
        # keeps two stores' runs apart on one cluster, and a reset store's from the old one's.
        return RayBackend(settings.ray_address, settings.home / "ray", store_id=store_id)
    given = {
        "cpus": settings.capacity_cpus,
        "gpus": settings.capacity_gpus,
        "memory_mb": settings.capacity_memory_mb,
    }
    capacity = machine_capacity().model_copy(
        update={k: v for k, v in given.items() if v is not None}
    )
    return LocalBackend(settings.home, capacity, store_id=store_id)


@dataclass
class JobManager:
    settings: Settings
    store: Store
    backend: Backend
    ctx: StepContext
    notifiers: dict[str, Notifier]

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        clock: Clock | None = None,
        notifiers: dict[str, Notifier] | None = None,
        *,
        create: bool = True,
    ) -> JobManager:
        """``create``: make the store if there is none (``NoStore`` otherwise)."""
        settings = settings or Settings.load()
        store = Store.open(settings.home, settings.database_url, create=create)
        try:
            backend = open_backend(settings, store.id)
            if notifiers is None:
                notifiers = build_notifiers(settings)
        except BaseException:
            store.close()
            raise
        ctx = StepContext(
            store,
            backend,
            settings.home,
            clock or SystemClock(),
            random.Random(),
            secrets=settings.secrets,
            hidden=settings.hidden(),
            fair_share=settings.fair_share,
        )
        return cls(settings, store, backend, ctx, notifiers)

    def close(self) -> None:
        self.store.close()

    def submit(self, specs: Sequence[JobSpec]) -> Submission:
        return self.store.submit(specs, self.ctx.clock.now())

    def scheduler(self) -> Scheduler:
        s = self.settings
        notifiers = self.notifiers
        return Scheduler(
            self.ctx,
            notify=lambda ctx: notify_step(ctx, notifiers),
            launch_interval=s.launch_interval,
            monitor_interval=s.monitor_interval,
            retry_interval=s.retry_interval,
            notify_interval=s.notify_interval,
        )

    def stop(self, job_id: int) -> Job:
        """Ask a job to stop: a New one stops before launch, a running one gets SIGTERM (a
        training job checkpoints first) and ends Stopped."""
        job = self.store.request_stop(job_id)
        if job.is_terminal:
            raise TransitionError(f"job {job_id} is already {job.status}")
        if job.status == Status.NEW:
            with contextlib.suppress(TransitionError):  # else the launch step stops it
                job = self.store.transition(
                    job,
                    Status.STOPPED,
                    self.ctx.clock.now(),
                    "stopped before launch",
                    ended_at=self.ctx.clock.now(),
                )
        elif job.status in ACTIVE and job.backend_ref is not None:
            self.backend.stop(job.backend_ref)
        return job

    def retry(self, job_id: int) -> Job:
        """Run a finished (Failed or Stopped) job again, as its next attempt."""
        job = self.store.get(job_id)
        if job.status not in (Status.FAILED, Status.STOPPED) or not job.final:
            raise TransitionError(
                f"job {job_id} is {job.status}{'' if job.final else ' (not final)'}: only a "
                "job that ended Failed or Stopped can be run again"
            )
        now = self.ctx.clock.now()
        return self.store.transition(
            job,
            Status.NEW,
            now,
            "retry asked for",
            attempt=job.attempt + 1,
            next_attempt_at=now,
            stop_requested=False,
            failures=Failures(),
            backend_ref=None,
            started_at=None,
            ended_at=None,
        )

    def logs(self, job_id: int, attempt: int | None = None, tail_bytes: int | None = None) -> str:
        """An attempt's output (the latest: None), its secret values masked (``***``): the
        job's ``env_from`` values, its ``env`` values whose names look secret, and the
        scheduler's own secrets."""
        job = self.store.get(job_id)
        number = attempt or job.attempt
        ref = job.backend_ref if number == job.attempt else None
        # else the name it ran under (from its events), else the name it would run under
        run = ref or attempt_refs(self.store.events(job_id)).get(number)
        run = run or run_name(self.store.id, job.id, number)
        spec = job.spec_model()
        hidden = secret_values(spec.env, spec.env_from, self.ctx.secrets, self.ctx.hidden)
        return masked_tail(lambda n: self.backend.logs(run, n), tail_bytes, hidden)
