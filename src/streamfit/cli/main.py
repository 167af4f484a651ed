"""The ``streamfit`` command. Every option can also be set as ``STREAMFIT_<COMMAND>_<OPTION>``."""

from __future__ import annotations

import logging

import click

from streamfit import __version__
from streamfit.cli.demo import demo_command
from streamfit.cli.predict import convert_command, predict_command
from streamfit.cli.train import finalize_command, train_command
from streamfit.core.registry import algorithm_names

__all__ = ["cli", "main"]


@click.group(context_settings={"auto_envvar_prefix": "STREAMFIT", "show_default": True})
@click.version_option(__version__, prog_name="streamfit")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """streamfit: streaming training of SageMaker-style built-in algorithms."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@cli.command("algorithms")
def algorithms_command() -> None:
    """List the built-in algorithms."""
    for name in algorithm_names():
        click.echo(name)


cli.add_command(train_command)
cli.add_command(finalize_command)
cli.add_command(predict_command)
cli.add_command(convert_command)
cli.add_command(demo_command)


def main() -> None:
    cli()
