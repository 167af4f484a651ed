"""``streamfit tune submit|list|show|stop``: tuning jobs, thin shells over the store's tuning
jobs (the scheduler's tuning step runs them). Store options as ``streamfit jobs``'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from streamfit.cli.jobs import open_manager, store_options
from streamfit.cli.options import handle_errors, print_json
from streamfit.jobs.settings import Settings
from streamfit.jobs.tuning import (
    Tunings,
    TuningSpec,
    TuningStatus,
    budget,
    load_tuning_spec,
    trial_rows,
)
from streamfit.jobs.tuning.digest import TrialRow, params_text
from streamfit.jobs.tuning.views import tuning_detail, tuning_summary
from streamfit.text import printable

__all__ = ["tune_group"]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@click.group("tune")
def tune_group() -> None:
    """Tuning jobs: many trials of one job spec, chosen by random, grid or Bayesian search,
    optionally with promotion-type Hyperband (hyperband, early_stopping: auto)."""


@tune_group.command("submit")
@handle_errors
@click.argument("file", type=click.Path(path_type=Path))
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the tuning job as JSON.")
def submit_command(file: Path, settings: Settings, as_json: bool) -> None:
    """Submit the tuning spec in FILE (YAML or JSON); the scheduler runs its trials."""
    spec = load_tuning_spec(file)
    with open_manager(settings) as manager:
        tunings = Tunings(manager.store)
        for earlier in spec.warm_start:
            tunings.get(earlier)  # (an unknown id is refused before anything is stored)
        tuning = tunings.create(spec, manager.ctx.clock.now())
    if as_json:
        print_json(tuning_summary(tuning))
        return
    swept = spec.swept
    each = ""
    if swept is not None:  # (the budget counts training runs)
        each = f" ({len(spec.search[swept].sweep_values())} models of {swept} each)"
    click.echo(
        f"tuning job {tuning.id} '{printable(tuning.name)}': {spec.strategy}, "
        f"{spec.trial_budget()} trials at most{each}, {spec.max_parallel_jobs} at a time, "
        f"{spec.objective.direction} {printable(spec.objective.metric)}"
    )


@tune_group.command("list")
@handle_errors
@click.option("--owner", default=None, help="Only this owner's tuning jobs.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in TuningStatus], case_sensitive=False),
    help="Only tuning jobs in this status; repeat for several.",
)
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the tuning jobs as JSON.")
def list_command(
    owner: str | None, statuses: tuple[str, ...], settings: Settings, as_json: bool
) -> None:
    """List tuning jobs, newest first."""
    wanted = [s for s in TuningStatus if s.value.lower() in {x.lower() for x in statuses}]
    with open_manager(settings, create=False) as manager:
        found = Tunings(manager.store).find(owner=owner, status=wanted or None)
    if as_json:
        print_json([tuning_summary(t) for t in found])
        return
    if not found:
        click.echo("no tuning jobs", err=True)
        return
    table = Table(title=f"{len(found)} tuning job{'s' * (len(found) != 1)}")
    for column in ("id", "name", "owner", "status", "strategy", "trials", "failed", "best"):
        table.add_column(
            column, justify="right" if column in ("id", "trials", "failed") else "left"
        )
    for t in found:
        spec = t.spec_model()
        table.add_row(
            str(t.id),
            Text(printable(t.name)),
            Text(printable(t.owner)),
            t.status.value,
            spec.strategy,
            _trials(t.trials, spec),
            str(t.failed),
            _number(t.best_value),
        )
    Console().print(table)


@tune_group.command("show")
@handle_errors
@click.argument("tuning_id", type=int)
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the tuning job as JSON.")
def show_command(tuning_id: int, settings: Settings, as_json: bool) -> None:
    """A tuning job: its trials by objective (best first), the best hyperparameters, and the
    budget spent (rows the trials read, their run time)."""
    with open_manager(settings, create=False) as manager:
        tunings = Tunings(manager.store)
        if as_json:
            print_json(tuning_detail(tunings, tuning_id))
            return
        tuning = tunings.get(tuning_id)
        rows = trial_rows(tuning, tunings.rungs(tuning_id))
    spent = budget(rows)
    spec = tuning.spec_model()
    metric = printable(spec.objective.metric)
    console = Console()
    console.print(
        Text(
            f"tuning job {tuning.id} '{printable(tuning.name)}' {tuning.status.value}: "
            f"{spec.strategy}, {_trials(tuning.trials, spec, rows, ' trials')}, "
            f"{tuning.failed} failed, {spec.objective.direction} {metric}"
        )
    )
    table = Table()
    names = list(rows[0].params) if rows else list(spec.search)
    rungs = ("rung",) if spec.multi_fidelity else ()
    # the models of one training run: its trial and job, one point each
    points = ("model",) if spec.swept is not None else ()
    for column in (
        "trial",
        *rungs,
        *points,
        "job",
        "status",
        "objective",
        *names,
        "rows",
        "run time",
    ):
        table.add_column(printable(column))
    for r in rows:
        table.add_row(
            str(r.trial),
            *((str(r.rung),) if rungs else ()),
            *(("-" if r.point is None else str(r.point),) if points else ()),
            str(r.job_id),
            r.status,
            _number(r.value),
            *(Text(printable(_cell(v))) for v in r.params.values()),
            "-" if r.rows is None else f"{r.rows:,.0f}",
            "-" if r.seconds is None else f"{r.seconds:.1f} s",
        )
    console.print(table)
    if spec.swept is not None:
        console.print(
            Text(
                f"{spec.swept}: the models of a trial come from its one training run "
                "(they share its job, rows and run time)"
            )
        )
    if tuning.best_params is not None:
        console.print(
            Text(
                f"best: trial {tuning.best_trial} (job {tuning.best_job_id}), {metric} "
                f"{_number(tuning.best_value)}: {params_text(tuning.best_params)}"
            )
        )
    console.print(
        Text(f"budget: {spent.rows:,.0f} rows read, {spent.seconds:,.1f} s of trial run time")
    )


def _trials(
    count: int, spec: TuningSpec, rows: list[TrialRow] | None = None, word: str = ""
) -> str:
    """Trials of the budget; with a swept post-training hyperparameter, the models and the
    training runs (the budget counts runs)."""
    if spec.swept is None:
        return f"{count}/{spec.trial_budget()}{word}"
    runs = "" if rows is None else f"{len({(r.trial, r.job_id) for r in rows})}/"
    return f"{count}{word} ({runs}{spec.trial_budget()} runs)"


@tune_group.command("stop")
@handle_errors
@click.argument("tuning_id", type=int)
@store_options
def stop_command(tuning_id: int, settings: Settings) -> None:
    """Stop a tuning job: no more trials, the running ones stopped; the best so far is kept."""
    with open_manager(settings, create=False) as manager:
        tuning = Tunings(manager.store).request_stop(tuning_id)
    if tuning.final:
        click.echo(f"tuning job {tuning_id} is already {tuning.status.value}")
    else:
        click.echo(f"tuning job {tuning_id}: stopping (the scheduler stops its running trials)")
