"""Options shared by several commands, and the mapping from errors to exit codes."""

from __future__ import annotations

import functools
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from streamfit.cli.debug import debugging, report_unexpected
from streamfit.core.hyperparameters import parse_hp_assignments
from streamfit.errors import EXIT_STATUSES, ConfigError, StreamfitError
from streamfit.jobs.errors import NoSuchJob, StoreError, TransitionError
from streamfit.text import printable

__all__ = [
    "EXIT_CODES",
    "auxiliary_option",
    "data_options",
    "handle_errors",
    "hp_option",
    "print_json",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes scripts can rely on: the table in :mod:`streamfit.errors` (click's usage
#: errors exit 2, as ``config`` does).
EXIT_CODES = {"ok": 0, **{status.name: status.code for _, status in EXIT_STATUSES}}


#: The first class an error is an instance of decides its prefix and exit code: the jobs
#: commands' own errors, then the table's.
_ERRORS: tuple[tuple[type[StreamfitError], tuple[str, str]], ...] = (
    (NoSuchJob, ("error", "config")),  # an unknown job id
    (TransitionError, ("error", "config")),  # a change its status forbids
    (StoreError, ("store error", "config")),  # a store that cannot be used: see its message
    *((cls, (status.prefix, status.name)) for cls, status in EXIT_STATUSES),
)


def handle_errors(fn: F) -> F:
    """Turn streamfit's errors into one line on stderr and a distinct exit code; anything
    else into one line too (:func:`report_unexpected`). ``--debug`` adds the traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StreamfitError as exc:
            prefix, code = next(v for k, v in _ERRORS if isinstance(exc, k))
            if debugging():
                traceback.print_exception(exc)
            click.echo(f"{prefix}: {printable(str(exc))}", err=True)  # it may quote the input
            sys.exit(EXIT_CODES[code])
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            sys.exit(report_unexpected(exc))

    return wrapper  # type: ignore[return-value]


def hp_option(fn: F) -> F:
    """``--hp NAME=VALUE``, repeatable, parsed into a dict passed as ``hyperparameters``."""

    def parse(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
        try:
            return parse_hp_assignments(value)
        except ConfigError as exc:
            raise click.BadParameter(str(exc)) from exc

    return click.option(
        "--hp",
        "hyperparameters",
        multiple=True,
        callback=parse,
        metavar="NAME=VALUE",
        help="A hyperparameter (SageMaker's names); repeat for several.",
    )(fn)


#: Both servers (``serve``, ``server``) answer only to loopback's Host names and these: a
#: guard against DNS rebinding.
allow_host_option = click.option(
    "--allow-host",
    multiple=True,
    metavar="NAME",
    help="A Host name to answer to besides loopback's (a proxy's); repeat for several.",
)

auxiliary_option = click.option(
    "--auxiliary",
    default=None,
    metavar="PATH",
    help="SageMaker's auxiliary channel: a vocab.txt (one word per line, in id order) or its "
    "folder. It names the ids, and counts raw text by them (else words are hashed).",
)


def data_options(fn: F) -> F:
    """How to read input channels."""
    for decorator in reversed(
        [
            click.option(
                "--content-type",
                default=None,
                help="Input format: text/csv, application/x-parquet, application/jsonlines, "
                "text/libsvm, application/x-recordio-protobuf, text/plain (raw text, a "
                "document a line) (default: from the file).",
            ),
            click.option(
                "--label-column",
                default=None,
                help="Name of the label column (CSV with a header, Parquet, SQL).",
            ),
            click.option(
                "--on-bad-rows",
                type=click.Choice(["error", "skip"]),
                default="error",
                show_default=True,
                help="Stop at the first bad row, or skip and count bad rows.",
            ),
            click.option(
                "--device",
                default="cpu",
                show_default=True,
                help="cpu, cuda, cuda:N or auto.",
            ),
            auxiliary_option,
            click.option(
                "--stop-words/--no-stop-words",
                default=None,
                help="Drop English stop words from raw text (default: drop them, or as the "
                "state continued was trained).",
            ),
        ]
    ):
        fn = decorator(fn)
    return fn


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))
