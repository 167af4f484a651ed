"""What the command-line tests of the job manager share: a ``STREAMFIT_HOME`` environment
whose left-over runs are killed afterwards, and ``streamfit`` invoked in it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from streamfit.cli.main import cli

Env = dict[str, str | None]


def home_env(tmp_path: Path, cpus: int, memory_mb: int) -> Iterator[Env]:
    """The environment of a store under ``tmp_path/home`` with this capacity (a fixture's
    body): whatever a failed test left running goes with it."""
    home = tmp_path / "home"
    yield {
        "STREAMFIT_HOME": str(home),
        "STREAMFIT_DATABASE_URL": None,
        "STREAMFIT_CAPACITY_CPUS": str(cpus),
        "STREAMFIT_CAPACITY_MEMORY_MB": str(memory_mb),
    }
    for child in (home / "runs").glob("*/child.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            os.killpg(int(json.loads(child.read_text())["pid"]), signal.SIGKILL)


def run_cli(env: Env, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def cli_json(env: Env, *args: str) -> Any:
    """``streamfit ARGS --json``, which must succeed, parsed."""
    result = run_cli(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
