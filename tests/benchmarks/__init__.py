"""Tests of the benchmark scripts, which live outside the package (in benchmarks/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def import_benchmark(name: str) -> ModuleType:
    """A module of benchmarks/, imported as its scripts import each other."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


def run_benchmark(script: str, *args: str) -> tuple[str, Any]:
    """``benchmarks/<script> args`` in a process of its own: what it printed, and the JSON
    it wrote to its ``--json`` path."""
    out = Path(args[args.index("--json") + 1])
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def generated_panel(folder: Path, series: int, seed: int, lengths: tuple[int, int]) -> Any:
    """deepar_data's generated monthly series written as a panel (the last 12 held out)."""
    data = import_benchmark("deepar_data")
    records = [
        (f"s{i:02d}", json.loads(line))
        for i, line in enumerate(data.generated_series(series, seed=seed, lengths=lengths))
    ]
    return data.write_panel(folder, data.GENERATED, records, [data.GROUPS], "generated")
