"""The error tree's exit statuses: one table, as the README documents it, read by the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamfit.cli.options import EXIT_CODES, handle_errors
from streamfit.errors import (
    EXIT_STATUSES,
    CorruptStateError,
    DataError,
    ExitStatus,
    IncompatibleStateError,
    StreamfitError,
    UnknownAlgorithmError,
    exit_status_of_code,
)
from streamfit.jobs.errors import NoSuchJob, SpecError, StoreReadOnly

README = Path(__file__).parents[1] / "README.md"


def _error(cls: type[StreamfitError]) -> StreamfitError:
    return cls("boom", source="a.csv") if issubclass(cls, DataError) else cls("boom")


def test_the_codes_are_the_readmes_and_each_stands_for_one_status() -> None:
    paragraph = README.read_text().split("Exit codes:", 1)[1].split("\n\n", 1)[0]
    documented = {int(code) for code in re.findall(r"`(\d+)`", paragraph)}
    codes = [status.code for _, status in EXIT_STATUSES]
    assert len(set(codes)) == len(codes) and {0, *codes} == documented == {0, 1, 2, 3, 4, 5, 75}
    named = {"ok": 0, "error": 1, "config": 2, "data": 3, "state": 4, "diverged": 5}
    assert {**named, "interrupted": 75} == EXIT_CODES
    assert all(exit_status_of_code(s.code) == s for _, s in EXIT_STATUSES)
    assert exit_status_of_code(0) is None and exit_status_of_code(137) is None


@pytest.mark.parametrize(
    ("error", "status"),
    [
        *((_error(cls), status) for cls, status in EXIT_STATUSES),
        # subclasses take their ancestor's row; the jobs commands' own errors exit as config
        (UnknownAlgorithmError("no such algorithm 'x'"), exit_status_of_code(2)),
        (CorruptStateError("truncated"), exit_status_of_code(4)),
        (IncompatibleStateError("another algorithm"), exit_status_of_code(4)),
        (SpecError("jobs.yaml, job 1: name: missing"), exit_status_of_code(2)),
        (NoSuchJob("no job 42"), exit_status_of_code(2)),
    ],
    ids=lambda value: type(value).__name__,
)
def test_the_cli_exits_with_the_tables_code_and_prefix(
    error: StreamfitError, status: ExitStatus, capsys: pytest.CaptureFixture[str]
) -> None:
    @handle_errors
    def command() -> None:
        raise error

    with pytest.raises(SystemExit) as exited:
        command()
    assert exited.value.code == status.code
    assert capsys.readouterr().err == f"{status.prefix}: {error}\n"


def test_a_store_error_says_so_and_exits_as_config(capsys: pytest.CaptureFixture[str]) -> None:
    @handle_errors
    def command() -> None:
        raise StoreReadOnly("/srv/streamfit.db: read-only")

    with pytest.raises(SystemExit) as exited:
        command()
    assert exited.value.code == EXIT_CODES["config"] == 2
    assert capsys.readouterr().err == "store error: /srv/streamfit.db: read-only\n"
