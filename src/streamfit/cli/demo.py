"""``streamfit demo`` (``make demo``): streamfit's two halves on the embedded defaults, in a few
minutes.

1. One Linear Learner job in-process: 32 candidate models, one pass over 1M generated rows,
   validation metrics, throughput, and a second model from the same state without data.
2. A sweep of 24 real training jobs through the job manager (SQLite + local processes):
   21 ordinary ones, one whose command has a bug (it uses up its retries, then fails for
   good), one that needs every CPU (it waits for capacity, then runs), and one that is killed
   mid-run (it resumes from its checkpoint). The scheduler runs until every job has ended;
   then the job table, the statistics, the best model and the notification digest.
3. How to open the dashboard over the sweep's store (``streamfit server``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from streamfit.cli.options import handle_errors
from streamfit.datagen import linear_task, write_batches
from streamfit.jobs.backends.local import LocalBackend
from streamfit.jobs.manager import JobManager
from streamfit.jobs.notify.messages import digest_content
from streamfit.jobs.runs import run_name
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import JobSpec
from streamfit.jobs.stats import job_stats

__all__ = ["dashboard_hint", "demo_command", "run_demo"]

OWNER = "demo@example.com"
BUG = "rows = 1_000; batches = 0\nprint('mean rows per batch:', rows / batches)\n"


def _data(workdir: Path, rows: int, console: Console) -> dict[str, str]:
    task = linear_task(20, "binary", seed=7, signal=3.0)
    paths = {}
    started = time.perf_counter()
    for offset, (channel, n) in enumerate(
        {"train": rows, "validation": 20_000, "test": 20_000}.items()
    ):
        path = workdir / f"sweep-{channel}-{n}.parquet"
        if not path.exists():
            write_batches(path, task.blocks(n, offset=offset * 10**9))
        paths[channel] = str(path)
    console.print(
        f"[bold]data[/] {rows:,} x 20 training rows, 20,000 validation, 20,000 test "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return paths


def _specs(paths: dict[str, str], workdir: Path, settings: Settings, cpus: float) -> list[JobSpec]:
    notify: dict[str, Any] = {"digest": True, "console": True}
    if settings.smtp_host:
        notify["email"] = [OWNER]
    common: dict[str, Any] = {
        "owner": OWNER,
        "algorithm": "linear-learner",
        "inputs": paths,
        "checkpoint_seconds": 1,
        "notify": notify,
        "retry": {"backoff_seconds": 1},
    }
    specs: list[JobSpec] = []
    for loss in ("logistic", "hinge_loss"):
        for lr in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3):
            for wd in (0.0, 1e-4):
                if len(specs) == 21:
                    break
                hp = {
                    "predictor_type": "binary_classifier",
                    "num_models": 1,
                    "loss": loss,
                    "learning_rate": lr,
                    "wd": wd,
                    "l1": 0.0,
                }
                specs.append(
                    JobSpec.model_validate(
                        {
                            **common,
                            "name": f"{loss}-lr{lr:g}-wd{wd:g}",
                            "hyperparameters": hp,
                            "tags": {"sweep": "demo", "loss": loss},
                        }
                    )
                )
    script = workdir / "feature_job.py"
    script.write_text(BUG)
    specs.append(
        JobSpec.model_validate(
            {
                "name": "buggy-feature-job",
                "owner": OWNER,
                "command": [sys.executable, str(script)],
                "retry": {"algorithm": 2, "backoff_seconds": 1},
                "notify": notify,
                "tags": {"sweep": "demo"},
            }
        )
    )
    packed = {"predictor_type": "binary_classifier", "num_models": 32}
    specs.append(
        JobSpec.model_validate(
            {
                **common,
                "name": "all-cpus-32-models",
                "hyperparameters": packed,
                "resources": {"cpus": cpus},
                "tags": {"sweep": "demo"},
            }
        )
    )
    slow = {**packed, "mini_batch_size": 100, "num_models": 8}
    specs.append(
        JobSpec.model_validate(
            {
                **common,
                "name": "killed-mid-run",
                "hyperparameters": slow,
                "tags": {"sweep": "demo"},
            }
        )
    )
    return specs


def _local(manager: JobManager) -> LocalBackend:
    backend = manager.backend
    if not isinstance(backend, LocalBackend):  # the settings above rule this out
        raise TypeError(f"the demo needs the local backend, not {backend.name}")
    return backend


def _kill_once_checkpointed(manager: JobManager, job_id: int, console: Console) -> None:
    """Play the failing machine: kill -9 the job's training process after its first
    checkpoint; the retry resumes from it."""
    checkpoints = manager.settings.home / "jobs" / str(job_id) / "checkpoints"
    child = _local(manager).runs / run_name(manager.store.id, job_id, 1) / "child.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if any(checkpoints.glob("checkpoint-*")) and child.exists():
            pid = json.loads(child.read_text())["pid"]
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            console.print(f"[bold red]kill -9[/] job {job_id}'s training process (pid {pid})")
            return
        time.sleep(0.1)


def _best(manager: JobManager, ids: list[int]) -> Table:
    done = [j for j in manager.store.find() if j.id in ids and j.metrics]
    done.sort(key=lambda j: -(j.metrics or {}).get("validation:roc_auc_score", 0.0))
    table = Table(title="best models of the sweep (validation)")
    for column in ("id", "name", "AUC", "accuracy", "test AUC", "attempts"):
        table.add_column(column, justify="right" if column != "name" else "left")
    for job in done[:5]:
        m = job.metrics or {}
        table.add_row(
            str(job.id),
            job.name,
            f"{m.get('validation:roc_auc_score', float('nan')):.4f}",
            f"{m.get('validation:binary_classification_accuracy', float('nan')):.4f}",
            f"{m.get('test:roc_auc_score', float('nan')):.4f}",
            str(job.attempt),
        )
    return table


def run_demo(workdir: Path, rows: int = 1_000_000, sweep_rows: int = 200_000) -> None:
    from streamfit.cli.jobs import jobs_table, stats_tables
    from streamfit.cli.train import print_metrics
    from streamfit.training.inference import finalize
    from streamfit.training.trainer import train

    console = Console(width=None if sys.stdout.isatty() else 120)
    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]1. one streaming training job, in-process")
    task = linear_task(50, "binary", seed=7)
    paths = {}
    for offset, (channel, n) in enumerate({"train": rows, "validation": 50_000}.items()):
        path = workdir / f"{channel}-{n}.parquet"
        if not path.exists():
            write_batches(path, task.blocks(n, offset=offset * 10**9))
        paths[channel] = str(path)
    job = workdir / "job"
    shutil.rmtree(job, ignore_errors=True)
    result = train(
        "linear-learner",
        paths["train"],
        validation=paths["validation"],
        hyperparameters={"predictor_type": "binary_classifier", "num_models": 32},
        output=job,
    )
    print_metrics(
        {k: v for k, v in result.metrics.items() if not k.startswith("train:s")},
        f"linear-learner, 32 candidates, one pass over {rows:,} x 50 rows",
    )
    meta = result.model.meta
    console.print(
        f"[bold]throughput[/] {result.metrics['train:rows_per_second']:,.0f} rows/s; best "
        f"candidate #{meta['candidate']} (learning rate {meta['learning_rate']:.3g}), "
        f"threshold {meta['threshold']:.3f} by {meta['selection']['criterion']}"
    )
    tuned = finalize(
        job / "state",
        binary_classifier_model_selection_criteria="recall_at_target_precision",
        target_precision=0.9,
    )
    console.print(
        f"[bold]same state, recall at precision >= 0.9[/]: threshold "
        f"{tuned.meta['threshold']:.3f}, recall {tuned.meta['selection']['value']:.3f} "
        "(no data read again)"
    )

    console.rule("[bold]2. a sweep of 24 jobs through the job manager")
    home = workdir / "home"
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings.load(home=home, backend="local")  # it kills a local process
    manager = JobManager.open(settings)
    manager.ctx.starvation_seconds = 5.0  # let the all-CPUs job in after a short wait
    cpus = _local(manager).capacity.cpus
    specs = _specs(_data(workdir, sweep_rows, console), workdir, settings, cpus)
    submission = manager.submit(specs)
    ids = submission.job_ids
    console.print(
        f"[bold]submitted[/] {len(ids)} jobs as submission {submission.id} to "
        f"{settings.home / 'streamfit.db'}; capacity {cpus:g} CPUs"
    )
    killer = threading.Thread(
        target=_kill_once_checkpointed, args=(manager, ids[-1], console), daemon=True
    )
    killer.start()
    started = time.monotonic()
    scheduler = manager.scheduler()

    def finished() -> bool:
        jobs = manager.store.find(submission=submission.id)
        return all(j.is_terminal for j in jobs) and not manager.store.notifications(
            status="pending", due=time.time() + 60
        )

    done = scheduler.run_until(finished, timeout=270)
    console.print(
        f"[bold]scheduler[/] {'all jobs ended' if done else 'timed out'} after "
        f"{time.monotonic() - started:.0f} s"
    )
    console.print(
        jobs_table(sorted(manager.store.find(submission=submission.id), key=lambda j: j.id))
    )
    for table in stats_tables(job_stats(manager.store, by="tag:sweep"), "tag:sweep"):
        console.print(table)
    console.print(_best(manager, ids))
    for job_id in (ids[-3], ids[-2], ids[-1]):
        one = manager.store.get(job_id)
        story = " -> ".join(
            e.to_status + (f" ({e.failure_kind})" if e.failure_kind else "")
            for e in manager.store.events(job_id)
        )
        console.print(f"[bold]{one.name}[/]: {story}")
    jobs = manager.store.find(submission=submission.id)
    digest = digest_content(submission.id, jobs)
    sent = [
        n.channel
        for n in manager.store.notifications(status="sent")
        if n.key == f"digest:{submission.id}"
    ]
    console.print(
        Panel(
            digest.text,
            title=f"digest: {digest.subject}",
            subtitle=f"sent to: {', '.join(sent) or 'nobody yet'}",
        )
    )
    if not settings.smtp_host:
        console.print("(set STREAMFIT_SMTP_HOST, and STREAMFIT_SMTP_PORT, to have it emailed)")
    manager.close()
    console.rule("[bold]3. the dashboard")
    console.print(dashboard_hint(home, submission.id))


def dashboard_hint(home: Path, submission: str) -> str:
    """How to look at the demo's jobs in the browser (``streamfit server`` over its home).

    >>> print(dashboard_hint(Path("demo-output/home"), "abc"))
    streamfit server --home demo-output/home   then open http://127.0.0.1:8000/
    (the job table, each job's curves and log; the sweep at http://127.0.0.1:8000/submissions/abc)
    """
    url = "http://127.0.0.1:8000/"
    return (
        f"streamfit server --home {home}   then open {url}\n"
        f"(the job table, each job's curves and log; the sweep at {url}submissions/{submission})"
    )


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the data, the jobs and their store go.",
)
@click.option(
    "--rows",
    type=int,
    default=1_000_000,
    show_default=True,
    help="Training rows of the in-process job.",
)
@click.option(
    "--sweep-rows",
    type=int,
    default=200_000,
    show_default=True,
    help="Training rows of each sweep job.",
)
@handle_errors
def demo_command(workdir: Path, rows: int, sweep_rows: int) -> None:
    """One streaming training job, then a sweep of 24 jobs through the job manager."""
    run_demo(workdir, rows, sweep_rows)
