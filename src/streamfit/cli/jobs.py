"""``streamfit jobs submit|list|show|logs|stop|retry|stats``: thin shells over the job manager.

The store is ``$STREAMFIT_HOME/streamfit.db`` unless ``--home`` or ``--database-url`` (also
``STREAMFIT_DATABASE_URL``) say otherwise. Times print in UTC; ``--json`` output uses ISO 8601.
Text that jobs brought (names, owners, tags, commands, reasons) prints through :func:`_cell`:
control characters escaped, rich markup shown as written.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from streamfit.cli.options import handle_errors, print_json
from streamfit.jobs.errors import NoStore, NoSuchJob
from streamfit.jobs.manager import JobManager
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import load_specs
from streamfit.jobs.stats import GroupStats, ShareUsage, job_stats, share_usage_stats
from streamfit.jobs.status import Status
from streamfit.jobs.store import Job
from streamfit.jobs.views import duration, job_detail, job_summary, shown_spec
from streamfit.text import printable

__all__ = [
    "jobs_group",
    "jobs_table",
    "open_manager",
    "share_tables",
    "stats_tables",
    "store_options",
]

F = TypeVar("F", bound=Callable[..., Any])

_STYLES = {
    "Completed": "green",
    "Failed": "red",
    "Stopped": "yellow",
    "InProgress": "cyan",
    "Launched": "blue",
}


# -- shared options ---------------------------------------------------------------------------


def store_options(fn: F) -> F:
    """``--home`` and ``--database-url``, passed on as ``settings`` (a :class:`Settings`)."""

    @click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="STREAMFIT_HOME",
        default=None,
        help="The job manager's folder: store, runs, settings.yaml [env: STREAMFIT_HOME; "
        "default: ~/.streamfit].",
    )
    @click.option(
        "--database-url",
        envvar="STREAMFIT_DATABASE_URL",
        default=None,
        help="A SQLAlchemy URL (e.g. postgresql+psycopg://...) instead of the SQLite file in "
        "the home folder [env: STREAMFIT_DATABASE_URL].",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, home: Path | None, database_url: str | None, **kwargs: Any) -> Any:
        settings = Settings.load(home=home, database_url=database_url)
        return fn(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextmanager
def open_manager(settings: Settings, *, create: bool = True, **kwargs: Any) -> Iterator[JobManager]:
    """The job manager for ``settings``; no notifiers unless given (commands here send none:
    the scheduler's notify step tells owners, from the store). ``create=False``: where there
    is no store yet, say so and read an empty one, creating nothing."""
    kwargs.setdefault("notifiers", {})
    try:
        manager = JobManager.open(settings, create=create, **kwargs)
    except NoStore as exc:
        empty = settings.model_copy(update={"database_url": "sqlite://"})
        with open_manager(empty, **kwargs) as manager:
            try:
                yield manager
            except NoSuchJob as missing:
                raise NoSuchJob(f"{missing}: {exc}") from None
        click.echo(f"no jobs: {exc}", err=True)
        return
    try:
        yield manager
    finally:
        manager.close()


# -- formatting -------------------------------------------------------------------------------


def _short_time(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _cell(value: object, *, lines: bool = False) -> Text:
    """A table cell of stored text: control characters escaped (``lines``: tabs and newlines
    kept), and a :class:`Text`, so that ``[red]`` or ``:smile:`` in a name print as written."""
    return Text(printable(str(value), lines=lines))


def jobs_table(found: Sequence[Job]) -> Table:
    """The ``jobs list`` table."""
    table = Table(title=f"{len(found)} job{'s' * (len(found) != 1)}")
    table.add_column("id", justify="right")
    table.add_column("name")
    table.add_column("owner")
    table.add_column("status", no_wrap=True)
    table.add_column("try", justify="right")
    table.add_column("failure")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("run time", justify="right")
    now = time.time()
    for job in found:
        running = job.started_at is not None and job.status == Status.IN_PROGRESS
        end = job.ended_at if not running else now
        run = end - job.started_at if job.started_at is not None and end is not None else None
        table.add_row(
            str(job.id),
            _cell(job.name),
            _cell(job.owner),
            _status_text(job),
            str(job.attempt),
            _cell(job.failure_kind or ""),
            _short_time(job.created_at),
            duration(run),
        )
    return table


def _status_text(job: Job) -> Text:
    text = job.status.value
    if job.status == Status.FAILED and not job.final:
        text += " (retrying)"
    return Text(text, style=_STYLES.get(job.status.value, ""))


def _ranges(ids: Sequence[int]) -> str:
    """Job ids as ranges.

    >>> _ranges([1, 2, 3, 5, 7, 8])
    '1-3, 5, 7-8'
    """
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _tags(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    tags = {}
    for item in value:
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE")
        tags[key] = val
    return tags


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_since(value: str, now: float) -> float:
    """``7d``, ``12h``, ``30m`` ago, or an ISO date or time (UTC unless it says otherwise).

    >>> parse_since("2d", now=1_000_000.0), parse_since("1970-01-02", now=0.0)
    (827200.0, 86400.0)
    """
    match = _RELATIVE.match(value.strip())
    if match:
        return now - float(match[1]) * _UNITS[match[2]]
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected e.g. 7d, 12h or 2026-11-01") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    return None if value is None else parse_since(value, time.time())


# -- commands ---------------------------------------------------------------------------------


@click.group("jobs")
def jobs_group() -> None:
    """Submit training jobs and follow them (the scheduler runs them: `streamfit scheduler`)."""


@jobs_group.command("submit")
@handle_errors
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the submission as JSON.")
def submit_command(files: tuple[Path, ...], settings: Settings, as_json: bool) -> None:
    """Submit every job in FILES (YAML, JSON, or JSON Lines) as one submission. All are checked
    first: one bad job and nothing is stored."""
    specs = load_specs(files)
    with open_manager(settings) as manager:
        submission = manager.submit(specs)
    if as_json:
        print_json({"submission": submission.id, "jobs": submission.job_ids})
    else:
        n = len(submission.job_ids)
        click.echo(
            f"submission {submission.id}: {n} job{'s' * (n != 1)}, "
            f"id{'s' * (n != 1)} {_ranges(submission.job_ids)}"
        )


@jobs_group.command("list")
@handle_errors
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in Status], case_sensitive=False),
    help="Only jobs in this status; repeat for several.",
)
@click.option("--owner", default=None, help="Only this owner's jobs.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    callback=_tags,
    metavar="KEY=VALUE",
    help="Only jobs with this tag; repeatable.",
)
@click.option("--submission", default=None, help="Only the jobs of this submission.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=100, help="At most this many (0: all)."
)
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
def list_command(
    statuses: tuple[str, ...],
    owner: str | None,
    tags: dict[str, str],
    submission: str | None,
    limit: int,
    settings: Settings,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    with open_manager(settings, create=False) as manager:
        found = manager.store.find(
            status=[Status(s) for s in statuses] or None,
            owner=owner,
            tags=tags or None,
            submission=submission,
            limit=limit or None,
            newest_first=True,
        )
    if as_json:
        print_json([job_summary(j) for j in found])
        return
    if not found:  # an empty table says less than a sentence
        if manager.store.url != "sqlite://":  # the stand-in for no store: that was said
            filtered = statuses or owner or tags or submission
            click.echo("no jobs match" if filtered else "no jobs yet", err=True)
        return
    Console().print(jobs_table(found))


@jobs_group.command("show")
@handle_errors
@click.argument("job_id", type=int)
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def show_command(job_id: int, settings: Settings, as_json: bool) -> None:
    """A job in full: spec, attempts, metrics, and its history of status changes."""
    with open_manager(settings, create=False) as manager:
        job = manager.store.get(job_id)
        history = manager.store.events(job_id)
    detail = job_detail(job, history)
    if as_json:
        print_json(detail)
        return
    console = Console()
    about = Table.grid(padding=(0, 2))
    about.add_column(style="bold")
    about.add_column()
    rows: list[tuple[str, Any]] = [
        ("job", f"{job.id} '{job.name}'"),
        ("owner", job.owner),
        ("share", f"{job.share}, priority {job.priority}"),
        ("status", _status_text(job)),
        ("attempt", f"{job.attempt} (at most {job.max_attempts})"),
        ("submission", job.submission),
        ("tags", ", ".join(f"{k}={v}" for k, v in job.tags.items())),
        ("run", shlex.join(job.spec.get("command") or ["train", str(job.spec.get("algorithm"))])),
        ("workdir", job.spec.get("workdir")),
        ("env", ", ".join(f"{k}={v}" for k, v in shown_spec(job)["env"].items())),
        ("env_from", ", ".join(f"{k}={ref}" for k, ref in job.spec.get("env_from", {}).items())),
        ("output", job.output_uri),
        ("failure", job.failure_kind),
        ("reason", job.failure_reason),
        ("metrics", ", ".join(f"{k}={v}" for k, v in (job.metrics or {}).items())),
    ]
    for key, value in rows:
        if isinstance(value, Text):
            about.add_row(key, value)
        elif value:
            about.add_row(key, _cell(value, lines=key == "reason"))
    console.print(about)
    table = Table(title="history")
    for name in ("at (UTC)", "attempt", "from", "to", "detail"):
        table.add_column(name)
    for e in history:
        table.add_row(
            _short_time(e.at),
            str(e.attempt),
            _cell(e.from_status or ""),
            _cell(e.to_status),
            _cell(e.detail or ""),
        )
    console.print(table)
    if detail["versions"]:
        console.print(versions_table(detail["versions"]))


def versions_table(versions: list[dict[str, Any]]) -> Table:
    """A job's published model versions, newest first, with their windows' metrics."""
    names = sorted({k for v in versions for k in v["window"]})
    table = Table(title="published versions")
    for name in ("version", "published (UTC)", "rows", *(f"window {n}" for n in names)):
        table.add_column(_cell(name))
    for v in versions:
        at = (v["published_at"] or "").replace("T", " ")[:19]
        cells = [_number(v["window"].get(n)) for n in names]
        table.add_row(v["version"], at, _number(v["rows"]), *cells)
    return table


def _number(value: Any) -> Text:
    """A metric of a file a job wrote: numbers shortened, anything else escaped."""
    if isinstance(value, float):
        return Text(f"{value:.4g}")
    if isinstance(value, int):
        return Text(f"{value:,}")
    return Text("-") if value is None else _cell(value)


@jobs_group.command("logs")
@handle_errors
@click.argument("job_id", type=int)
@click.option("--attempt", type=click.IntRange(min=1), default=None, help="Default: the latest.")
@click.option(
    "--tail", "tail_bytes", type=click.IntRange(min=1), default=None, help="Only the last BYTES."
)
@store_options
def logs_command(
    job_id: int, attempt: int | None, tail_bytes: int | None, settings: Settings
) -> None:
    """The output (stdout and stderr) of a job's run."""
    with open_manager(settings, create=False) as manager:
        text = manager.logs(job_id, attempt, tail_bytes)
    if text:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        click.echo(f"job {job_id}: no output (yet) for this attempt", err=True)


@jobs_group.command("stop")
@handle_errors
@click.argument("job_id", type=int)
@store_options
def stop_command(job_id: int, settings: Settings) -> None:
    """Stop a job: a waiting one at once, a running one by SIGTERM (it ends Stopped)."""
    with open_manager(settings, create=False) as manager:
        job = manager.stop(job_id)
    if job.status == Status.STOPPED:
        click.echo(f"job {job_id}: stopped")
    else:
        click.echo(f"job {job_id}: stop requested (it is {job.status}; it ends Stopped)")


@jobs_group.command("retry")
@handle_errors
@click.argument("job_id", type=int)
@store_options
def retry_command(job_id: int, settings: Settings) -> None:
    """Run a failed or stopped job again, as its next attempt."""
    with open_manager(settings, create=False) as manager:
        job = manager.retry(job_id)
    click.echo(f"job {job_id}: attempt {job.attempt} queued")


def stats_tables(rows: Sequence[GroupStats], by: str) -> tuple[Table, Table]:
    """Outcomes, then times: each fits in 80 columns (``--json`` has failures by kind too)."""
    key = _cell(by.removeprefix("tag:"))
    outcomes = Table(title=_cell(f"jobs by {by}"))
    outcomes.add_column(key, no_wrap=True)
    for name in ("jobs", "done", "failed", "stopped", "active", "ok"):
        outcomes.add_column(name, justify="right")
    outcomes.add_column("retries by kind")
    times = Table(title="wait to launch, and run time (start to end)")
    times.add_column(key, no_wrap=True)
    for name in ("wait p50", "p90", "p99", "run p50", "p90", "p99"):
        times.add_column(name, justify="right")
    for r in rows:
        group = _cell(r["group"]) if r["group"] is not None else "(none)"
        rate = r["success_rate"]
        outcomes.add_row(
            group,
            str(r["jobs"]),
            str(r["completed"]),
            str(r["failed"]),
            str(r["stopped"]),
            str(r["in_flight"]),
            "-" if rate is None else f"{rate:.0%}",
            _cell(", ".join(f"{k} {n}" for k, n in r["retries"].items())),
        )
        wait, run = r["wait_to_launch"], r["run_time"]
        times.add_row(
            group,
            *(duration(p) for p in (wait["p50"], wait["p90"], wait["p99"])),
            *(duration(p) for p in (run["p50"], run["p90"], run["p99"])),
        )
    return outcomes, times


_CAPS = {"max_jobs": "jobs", "max_cpus": "CPUs", "max_gpus": "GPUs", "max_memory_mb": "MB"}


def share_tables(rows: Sequence[ShareUsage], half_life: float) -> tuple[Table, Table]:
    """Each share's weight, usage now and fair-share factor; then what its jobs hold, wait
    for and may hold (each fits in 80 columns)."""
    usage = Table(title=f"fair share now (usage decayed, half-life {duration(half_life)})")
    holds = Table(title="what each share's jobs hold now, and its caps")
    for table in (usage, holds):
        table.add_column("share", no_wrap=True)
    for name in ("weight", "CPU time", "used", "portion", "factor"):
        usage.add_column(name, justify="right")
    for name in ("running", "waiting", "CPUs", "GPUs", "memory"):
        holds.add_column(name, justify="right")
    holds.add_column("caps")
    for r in rows:
        share = _cell(r["share"])
        usage.add_row(
            share,
            f"{r['weight']:g}",
            duration(r["usage"]),
            f"{r['normalized_usage']:.0%}",
            f"{r['normalized_weight']:.0%}",
            f"{r['factor']:.2f}",
        )
        held = r["held"]
        holds.add_row(
            share,
            str(r["running"]),
            str(r["waiting"]),
            f"{held['cpus']:g}",
            f"{held['gpus']:g}",
            f"{held['memory_mb']:g} MB",
            ", ".join(f"{v:g} {_CAPS[k]}" for k, v in r["caps"].items()) or "-",
        )
    return usage, holds


@jobs_group.command("stats")
@handle_errors
@click.option(
    "--by",
    default="day",
    metavar="day|owner|share|tag:NAME",
    help="How to group jobs (share: with each share's usage now).",
)
@click.option(
    "--since",
    default=None,
    callback=_since,
    help="Only jobs submitted since then: 7d, 12h, 30m ago, or an ISO date/time (UTC).",
)
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
def stats_command(by: str, since: float | None, settings: Settings, as_json: bool) -> None:
    """How jobs fare: outcomes, success rate, retries by failure kind, wait and run times; by
    share, also each share's usage, fair-share factor and running jobs now."""
    fair = settings.fair_share
    with open_manager(settings, create=False) as manager:
        rows = job_stats(manager.store, by=by, since=since)
        shares = share_usage_stats(manager.store, fair, time.time()) if by == "share" else []
    if as_json:
        print_json({"groups": rows, "shares": shares} if by == "share" else rows)
    else:
        console = Console()
        for table in stats_tables(rows, by):
            console.print(table)
        if by == "share":
            for table in share_tables(shares, fair.half_life_seconds):
                console.print(table)
