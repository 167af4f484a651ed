"""``streamfit demo``: see :mod:`streamfit.demo`."""

from __future__ import annotations

from pathlib import Path

import click

from streamfit.cli.options import handle_errors
from streamfit.demo import run_demo

__all__ = ["demo_command"]


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
