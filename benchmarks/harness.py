"""What every benchmark script shares (they run as ``python benchmarks/NAME.py``).

A script names its contenders; :func:`run_all` runs each in a fresh interpreter
(``NAME.py --child CONTENDER ...``), where the script trains it, calls :func:`trained` the
moment the model is ready, scores it, and hands its result dict back with :func:`send` (JSON
in a file named by ``STREAMFIT_BENCH_RESULT``, so the child's own output never mixes with it).
Wall time runs from the parent starting the child to :func:`trained`: interpreter start-up,
imports and reading count, scoring does not. :func:`report` prints one kind of table
(Markdown, for the README) with ratios to a baseline row.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Column",
    "cpu_seconds",
    "parser",
    "peak_rss_mb",
    "report",
    "run_all",
    "send",
    "spawn",
    "trained",
    "write_json",
]

RESULT_ENV = "STREAMFIT_BENCH_RESULT"
Result = dict[str, Any]
Baseline = str | Callable[[Result], bool]


# -- in the child ----------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak RSS since exec, from VmHWM (``ru_maxrss`` would include the
    parent's peak before the fork: Linux keeps it across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads: steadier than wall time
    when other work shares the machine (it does not count time spent waiting for a core)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def trained() -> Result:
    """The child's measurements at the moment its model is trained (before any scoring)."""
    return {"trained_at": time.time(), "peak_rss_mb": peak_rss_mb(), "cpu_seconds": cpu_seconds()}


def send(result: Result) -> None:
    """Hand the child's result to the parent that :func:`spawn` ed it."""
    path = os.environ.get(RESULT_ENV)
    if not path:
        raise SystemExit(f"--child runs are started by the benchmark itself ({RESULT_ENV} unset)")
    Path(path).write_text(json.dumps(result))


# -- in the parent ---------------------------------------------------------------------------


def spawn(
    script: str | Path, name: str, args: Sequence[str] = (), rows: int | None = None
) -> Result:
    """Run ``script --child name *args`` in a fresh interpreter and return what it sent,
    with ``name``, ``wall`` (seconds from here to its :func:`trained`) and, given ``rows``,
    ``rows_per_second``; or ``{"name", "error"}`` when it failed."""
    # A crashing peer should not leave gigabytes of core file behind (inherited by the child).
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with tempfile.TemporaryDirectory(prefix="sf-bench-") as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, RESULT_ENV: str(out)}
        command = [sys.executable, str(script), "--child", name, *args]
        started = time.time()
        proc = subprocess.run(command, env=env, stderr=subprocess.PIPE, text=True, check=False)
        sent = out.read_text() if out.exists() else None
    if proc.returncode != 0 or sent is None:
        tail = proc.stderr.strip().splitlines()
        sys.stderr.write("\n".join(tail[-20:]) + "\n")
        why = f"exit status {proc.returncode}" if proc.returncode else "no result sent"
        return {"name": name, "error": f"{why}: {(tail or ['?'])[-1][:120]}"}
    doc: Result = {"name": name, **json.loads(sent)}
    doc["wall"] = doc["trained_at"] - started
    if rows is not None:
        doc["rows_per_second"] = rows / doc["wall"]
    return doc


def run_all(
    script: str | Path, names: Iterable[str], args: Sequence[str] = (), rows: int | None = None
) -> list[Result]:
    """:func:`spawn` each of ``names`` in turn (never two at once: they would share cores)."""
    results = []
    for name in names:
        print(f"running {name.strip()} ...", flush=True)
        doc = spawn(script, name, args, rows)
        results.append(doc)
        print("  " + json.dumps(doc), flush=True)
    return results


def parser(doc: str | None, rows: int | None, *, child: bool = True) -> argparse.ArgumentParser:
    """The options the benchmarks share: --rows, --match, --json and (where contenders run
    in child processes) --child, which :func:`spawn` sets."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    if rows is not None:
        p.add_argument("--rows", type=int, default=rows)
    p.add_argument("--match", help="only contenders whose name contains this")
    p.add_argument("--json", type=Path, help="also write the results here")
    if child:
        p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def settings(pairs: list[str] | None) -> dict[str, Any]:
    """``--set name=value`` pairs, values read as JSON where they parse (numbers, lists).

    >>> settings(["replay=8", "likelihood=gaussian", "cardinality=[8,4]"])
    {'replay': 8, 'likelihood': 'gaussian', 'cardinality': [8, 4]}
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def mean_by(runs: list[Result], key: str, count: str = "runs") -> list[Result]:
    """One row per value of ``key``, in order of first appearance: the mean of each number
    over its runs without an error (their number in ``count``), or its first run where
    every one failed.

    >>> mean_by([{"format": "a", "wall": 2.0, "seed": 0}, {"format": "a", "wall": 4.0,
    ...          "seed": 1}, {"format": "b", "error": "x"}], "format")
    [{'format': 'a', 'runs': 2, 'wall': 3.0}, {'format': 'b', 'error': 'x'}]
    """
    out = []
    for value in dict.fromkeys(r[key] for r in runs):
        mine = [r for r in runs if r[key] == value]
        good = [r for r in mine if "error" not in r]
        if not good:
            out.append(mine[0])
            continue
        row: Result = {key: value, count: len(good)}
        for name, first in good[0].items():
            if isinstance(first, int | float) and not isinstance(first, bool) and name != "seed":
                row[name] = statistics.fmean(
                    r[name] for r in good if isinstance(r.get(name), int | float)
                )
        out.append(row)
    return out


def write_json(path: Path | None, results: Any) -> None:
    if path is not None:
        path.write_text(json.dumps(results, indent=2) + "\n")


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of :func:`report`: ``row[key] * scale`` formatted with ``fmt`` (``"-"``
    where the row has no such key), or its comparison with the baseline row's value:
    ``vs="ratio"`` (this / baseline), ``"inverse"`` (baseline / this) or ``"change"``
    (this / baseline - 1). ``baseline`` overrides the table's for this column.

    >>> Column("x floor", "wall", ".2f", vs="ratio").cell({"wall": 3.0}, {"wall": 2.0})
    '1.50'
    >>> Column("vs KMeans", "msd", "+.2%", vs="change").cell({"msd": 1.01}, {"msd": 1.0})
    '+1.00%'
    >>> Column("push MB", "push_bytes", ",.0f", scale=1e-6).cell({"push_bytes": 2.5e9}, None)
    '2,500'
    """

    header: str
    key: str
    fmt: str = ",.1f"
    vs: Literal["ratio", "inverse", "change"] | None = None
    baseline: Baseline | None = None
    scale: float = 1.0
    suffix: str = ""

    def cell(self, row: Result, base: Result | None) -> str:
        value = row.get(self.key)
        if value is None:
            return "-"
        if self.vs is not None:
            reference = None if base is None else base.get(self.key)
            if not reference or (self.vs == "inverse" and not value):
                return "-"
            value = {
                "ratio": value / reference,
                "inverse": reference / value,
                "change": value / reference - 1,
            }[self.vs]
        return format(value * self.scale, self.fmt) + self.suffix


def _matches(row: Result, baseline: Baseline, label: str) -> bool:
    if "error" in row:
        return False
    if isinstance(baseline, str):
        return baseline in str(row.get(label, ""))
    return baseline(row)


def report(
    results: Sequence[Result],
    columns: Sequence[Column],
    *,
    baseline: Baseline | None = None,
    group: str | None = None,
    label: str = "name",
    label_header: str = "contender",
    labels: Sequence[tuple[str, str]] = (),
) -> str:
    """Print (and return) ``results`` as one Markdown table: the ``label`` column (and
    ``labels``, more ``(header, key)`` columns to the left), then ``columns``. A ratio
    compares each row with the first row that matches ``baseline`` (a substring of its label,
    or a predicate) among the rows of the same ``group`` value, if given.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.MARKDOWN, show_edge=True, pad_edge=True)
    table.add_column(label_header)
    for header, _ in labels:
        table.add_column(header)
    for column in columns:
        table.add_column(column.header, justify="right")
    for row in results:
        same = [r for r in results if group is None or r.get(group) == row.get(group)]

        def base_of(column: Column, same: list[Result] = same) -> Result | None:
            wanted = column.baseline or baseline
            return next((r for r in same if _matches(r, wanted, label)), None) if wanted else None

        left = [Text(str(row.get(label, "")).strip())] + [
            Text(str(row.get(key, ""))) for _, key in labels
        ]
        if "error" in row:
            rest = [Text(str(row["error"]))] + [Text("")] * (len(columns) - 1)
        else:
            rest = [Text(c.cell(row, base_of(c))) for c in columns]
        table.add_row(*left, *rest[: len(columns)])
    buffer = io.StringIO()
    Console(file=buffer, width=1000, color_system=None).print(table)
    text = "\n".join(line.rstrip() for line in buffer.getvalue().splitlines() if line.strip())
    print(text, flush=True)
    return text
