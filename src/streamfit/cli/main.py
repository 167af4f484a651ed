"""The ``streamfit`` command. Every option can also be set as ``STREAMFIT_<COMMAND>_<OPTION>``.

Command modules are imported when their command runs, so ``streamfit jobs ...`` and
``streamfit scheduler run`` start without loading PyTorch.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from streamfit import __version__
from streamfit.cli.debug import report_unexpected, set_debug

__all__ = ["cli", "main"]

#: command name -> "module:attribute"
_COMMANDS = {
    "train": "streamfit.cli.train:train_command",
    "finalize": "streamfit.cli.train:finalize_command",
    "predict": "streamfit.cli.predict:predict_command",
    "convert": "streamfit.cli.predict:convert_command",
    "demo": "streamfit.cli.demo:demo_command",
    "jobs": "streamfit.cli.jobs:jobs_group",
    "scheduler": "streamfit.cli.scheduler:scheduler_group",
    "serve": "streamfit.cli.serve:serve_command",
    "server": "streamfit.cli.server:server_command",
    "tune": "streamfit.cli.tune:tune_group",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module, attribute = _COMMANDS[cmd_name].split(":")
            command: Any = getattr(importlib.import_module(module), attribute)
            return command  # type: ignore[no-any-return]
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_LazyGroup,
    context_settings={"auto_envvar_prefix": "STREAMFIT", "show_default": True},
)
@click.version_option(__version__, prog_name="streamfit")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option(
    "--debug",
    is_flag=True,
    envvar="STREAMFIT_DEBUG",
    help="Show the traceback of an error along with its message [env: STREAMFIT_DEBUG].",
)
def cli(verbose: int, debug: bool) -> None:
    """streamfit: streaming training of SageMaker-style built-in algorithms, and
    fire-and-forget management of many training jobs."""
    set_debug(debug)
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@cli.command("algorithms")
def algorithms_command() -> None:
    """List the built-in algorithms."""
    from streamfit.core.registry import algorithm_names

    for name in algorithm_names():
        click.echo(name)


def main() -> None:
    try:
        cli.main(prog_name="streamfit")
    except Exception as exc:  # outside any command (a command's own are handled in it)
        sys.exit(report_unexpected(exc))
