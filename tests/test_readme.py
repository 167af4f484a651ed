"""Every code block of the README that is a command, a spec or Python runs, as written, in
README order, in one folder holding the data files its examples name.

- ``sh`` blocks run in bash with ``set -euo pipefail``: every command must succeed. A line
  ending in ``&`` starts a daemon, stopped when the README is done. ``make ...`` lines are the
  README's own set-up (CI runs ``make test`` and ``make demo`` itself) and ``python
  benchmarks/...`` lines are run with ``--help`` only (a benchmark takes minutes): both are
  checked to name a real target or script.
- ``yaml`` blocks are job specs (tuning specs if they have ``search``): each loads and
  validates, and one whose first line is a comment naming a file (``# sweep.yaml``) is
  written there for the blocks after it. A block naming ``$STREAMFIT_HOME/settings.yaml``
  is the scheduler's settings: written there, it loads as the blocks after it run.
- ``python`` blocks run in a fresh interpreter.
- Blocks without a language (diagrams, sample output) are not code.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from streamfit.datagen import cluster_task, linear_task, write_batches
from streamfit.jobs.settings import Settings
from streamfit.jobs.spec import load_specs
from streamfit.jobs.tuning.spec import load_tuning_spec

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CODE = {"sh", "bash", "yaml", "python"}


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # of the opening fence

    def __str__(self) -> str:
        return f"{self.lang}@{self.line}"


def blocks(path: Path = README) -> list[Block]:
    found, lines = [], path.read_text().splitlines()
    fence = re.compile(r"^```(\S*)\s*$")
    i = 0
    while i < len(lines):
        match = fence.match(lines[i])
        if match:
            start, body = i, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            found.append(Block(match.group(1), "\n".join(body) + "\n", start + 1))
        i += 1
    return found


BLOCKS = blocks()


def test_every_block_is_code_or_deliberately_text() -> None:
    """A block in another language would silently go untested."""
    for block in BLOCKS:
        assert block.lang in CODE | {""}, f"README line {block.line}: ```{block.lang}"
    assert len([b for b in BLOCKS if b.lang in CODE]) >= 7


def _data(root: Path) -> None:
    """The files the README's examples name."""
    data = root / "data"
    (data / "days").mkdir(parents=True)
    task = linear_task(8, "binary", seed=5, signal=3.0)
    write_batches(data / "train.parquet", task.blocks(20_000, block=5000))
    write_batches(data / "val.parquet", task.blocks(5000, offset=10**9))
    write_batches(data / "test.parquet", task.blocks(5000, offset=2 * 10**9))
    write_batches(data / "train.libsvm", task.blocks(2000))
    for day, offset in (("2026-11-22", 0), ("2026-11-23", 10**8)):
        write_batches(data / "days" / f"{day}.parquet", task.blocks(10_000, offset=offset))
    features = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    lines = "\n".join(",".join(f"{v:.6g}" for v in row) for row in features) + "\n"
    (data / "new.csv").write_text(lines)
    (root / "rows.csv").write_text(lines)
    clusters = cluster_task(n_features=5, k=6, seed=2)
    write_batches(data / "points.parquet", clusters.blocks(20_000))
    write_batches(data / "points-test.parquet", clusters.blocks(5000, offset=10**9))


@dataclass
class Sandbox:
    root: Path
    env: dict[str, str]
    daemons: list[int]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("readme")
    _data(root)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(root),
        "STREAMFIT_HOME": str(root / "home"),
        "LANG": "C.UTF-8",
        "COLUMNS": "120",
        "PYTHONPATH": str(ROOT),  # `python benchmarks/...`
    }
    box = Sandbox(root, env, [])
    yield box
    for pgid in box.daemons:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    # The jobs' runs are detached from every shell (their own sessions): end them too.
    for record in (root / "home" / "runs").glob("*/*.json"):
        if record.name in ("supervisor.json", "child.json"):
            pid = json.loads(record.read_text())["pid"]
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, re.MULTILINE))


def _shell(block: Block) -> str:
    """The block as a script: ``make`` lines checked, benchmark lines asked for --help."""
    targets = _make_targets()
    out = []
    for line in block.text.splitlines():
        command = line.split("#", 1)[0].strip()
        if command.startswith("make "):
            target = command.split()[1]
            assert target in targets, f"README line {block.line}: no make target {target!r}"
            continue
        if command.endswith("&"):  # a daemon: its output must not hold the block's pipe open
            name = f"daemon-{block.line}.log"
            out.append(f"{command[:-1].rstrip()} >{name} 2>&1 &")
            continue
        if command.startswith("python benchmarks/"):
            script = command.split()[1]
            assert (ROOT / script).is_file(), f"README line {block.line}: no {script}"
            out.append(f"python {shlex.quote(str(ROOT / script))} --help >/dev/null")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang], ids=str)
def test_readme_block_runs(block: Block, sandbox: Sandbox) -> None:
    where = f"README line {block.line}"
    if block.lang == "yaml":
        first = block.text.splitlines()[0]
        name = first.lstrip("# ").split()[0] if first.startswith("#") else "spec.yaml"
        path = sandbox.root / name
        if name == "$STREAMFIT_HOME/settings.yaml":
            path = Path(sandbox.env["STREAMFIT_HOME"]) / "settings.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text)
            assert Settings.load(env=sandbox.env), where
            return
        path.write_text(block.text)
        if re.search(r"^search:", block.text, re.MULTILINE):  # a tuning spec
            assert load_tuning_spec(path), where
        else:
            assert load_specs([path]), where
        return
    if block.lang == "python":
        command = [sys.executable, "-c", block.text]
    else:
        command = ["bash", "-c", "set -euo pipefail\n" + _shell(block)]
    proc = subprocess.Popen(
        command,
        cwd=sandbox.root,
        env=sandbox.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its daemons (`... &`) are stopped with the sandbox
    )
    sandbox.daemons.append(proc.pid)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{where}: still running after 240 s\n{output}")
    assert proc.returncode == 0, f"{where} failed with exit status {proc.returncode}:\n{output}"
    assert "Traceback" not in output, f"{where}:\n{output}"
