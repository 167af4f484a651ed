"""Errors nobody planned for: one line, not a traceback, unless ``--debug`` asks for it.

Kept apart from :mod:`streamfit.cli.options` so that the ``streamfit`` command itself starts
without importing pydantic or PyTorch.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from streamfit.text import printable

__all__ = ["EXIT_ERROR", "debugging", "report_unexpected", "set_debug"]

#: The exit code of an error that is not one of streamfit's own.
EXIT_ERROR = 1

#: Set by the ``--debug`` option of the ``streamfit`` group.
_asked = {"debug": False}


def set_debug(on: bool) -> None:
    _asked["debug"] = on


def debugging() -> bool:
    """``--debug`` or ``STREAMFIT_DEBUG=1``: show tracebacks along with the messages."""
    return _asked["debug"] or os.environ.get("STREAMFIT_DEBUG", "").lower() in ("1", "true", "yes")


def report_unexpected(exc: BaseException) -> int:
    """One line for an error streamfit did not expect (a bug, or a case it does not handle
    yet): its type and message, and how to see more. Returns the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    if isinstance(exc, BrokenPipeError):  # `streamfit predict ... | head`: the reader left
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        return 141
    if debugging():
        traceback.print_exception(exc)
    click.echo(
        f"error: unexpected {type(exc).__name__}: {printable(str(exc))}\n(not a case "
        "streamfit knows how to explain yet: run again with --debug or STREAMFIT_DEBUG=1 "
        "for the traceback, and please report it)",
        err=True,
    )
    return EXIT_ERROR
