"""Jobs that do not end (``continuous: true``): kept running while they make progress.

A continuous job's progress is what it writes: a new checkpoint in its checkpoint folder or a
new model version in ``OUTPUT/models/``. When its run fails (a lost process, a kill, its own
error, ``max_runtime_seconds``), the monitor compares its progress with the progress at its
last failure:

- progress since: a restart. The retry step queues it again at once as its next attempt,
  spending no budget (as a preempted job, :func:`~streamfit.jobs.preempt.requeue`); it resumes
  from its checkpoint. The budgets count the failures since.
- none: a failure like any job's, and one more in a row without progress; ``retry.crash_loop``
  of those in a row is a crash loop and the job fails for good.

A run that exits 0 (a stream's idle timeout) completes the job; a stop asked for stops it (a
trainer publishes a last version on SIGTERM).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from streamfit.jobs.records import Failures, Job

__all__ = ["crash_loop_reason", "failures_after", "progress_of", "restarts"]

#: ``OUTPUT/models/<version>/``, as ``streamfit.training.publish`` writes them (the job
#: manager sits below training and reads its folders, never its code).
MODELS = "models"
_VERSION = re.compile(r"^\d{6,}$")


def is_continuous(job: Job) -> bool:
    return bool(job.spec.get("continuous"))


def _newest(folder: Path, keep: re.Pattern[str] | None = None) -> tuple[int, str] | None:
    """The newest entry of ``folder`` (modified last; hidden ones are being written)."""
    newest = None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in entries:
        if entry.name.startswith(".") or (keep is not None and not keep.match(entry.name)):
            continue
        try:
            stamp = (entry.stat(follow_symlinks=False).st_mtime_ns, entry.name)
        except OSError:  # pruned while read
            continue
        newest = stamp if newest is None or stamp > newest else newest
    return newest


def progress_of(job: Job) -> str:
    """What ``job`` has written so far, as a mark that changes with each new checkpoint or
    model version ("" for nothing yet).

    >>> import tempfile, dataclasses
    >>> from streamfit.jobs.store import Store
    >>> from streamfit.jobs.spec import JobSpec
    >>> store = Store("sqlite://")
    >>> spec = JobSpec(name="x", owner="a@example.com", command=["true"], continuous=True)
    >>> job = store.get(store.submit([spec], now=0.0).job_ids[0])
    >>> folder = Path(tempfile.mkdtemp())
    >>> job = dataclasses.replace(job, checkpoint_uri=str(folder), output_uri=str(folder))
    >>> progress_of(job)
    ''
    >>> (folder / "checkpoint-000000001").mkdir()
    >>> progress_of(job).split("@")[0]
    'checkpoint-000000001'
    """
    found = []
    if job.checkpoint_uri is not None:
        found.append(_newest(Path(job.checkpoint_uri)))
    if job.output_uri is not None:
        found.append(_newest(Path(job.output_uri) / MODELS, _VERSION))
    newest = max((f for f in found if f is not None), default=None)
    return "" if newest is None else f"{newest[1]}@{newest[0]}"


def failures_after(job: Job, kind: str, signature: str) -> Failures:
    """A continuous job's failures once its run has failed with ``kind`` (see the module)."""
    progress = progress_of(job)
    if progress != (job.failures.progress or ""):
        return job.failures.progressed(progress)
    return job.failures.failed(kind, signature).stalled_at(progress)


def restarts(job: Job) -> bool:
    """Whether a Failed continuous job restarts at once, spending nothing: its last failure
    followed progress."""
    return is_continuous(job) and job.failures.stalled == 0


def crash_loop_reason(job: Job, crash_loop: int) -> str | None:
    """Why a Failed continuous job is in a crash loop, or None."""
    stalled = job.failures.stalled
    if not is_continuous(job) or stalled < crash_loop:
        return None
    return (
        f"crash loop: {stalled} failures in a row with no progress "
        "(no new checkpoint or model version between them)"
    )
