"""The benchmarks' shared harness: child processes, the result protocol and the report."""

from __future__ import annotations

import doctest
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load() -> ModuleType:
    """benchmarks/harness.py, which the scripts import as ``harness`` from their folder."""
    name = "benchmarks_harness"
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / "harness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


harness = _load()

CHILD = """
import sys, time
import harness

name = sys.argv[sys.argv.index("--child") + 1]
if name == "fails":
    sys.exit("no such data file: x.parquet")
if name == "silent":
    sys.exit(0)
blob = bytearray(64 << 20)  # 64 MB touched before training ends: peak RSS must see it
blob[:: 4096] = b"x" * len(blob[:: 4096])
time.sleep(0.2)
out = harness.trained()
time.sleep(0.5)  # scoring: not in the wall time
harness.send({**out, "auc": 0.75, "args": sys.argv[3:]})
"""


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bench.py"
    path.write_text(textwrap.dedent(CHILD))
    monkeypatch.setenv("PYTHONPATH", str(BENCHMARKS))
    return path


def test_a_child_result_comes_back_with_its_wall_time_and_peak_memory(script: Path) -> None:
    doc = harness.spawn(script, "good", ["--rows", "10"], rows=1000)
    assert doc["name"] == "good"
    assert doc["auc"] == 0.75
    assert doc["args"] == ["--rows", "10"]
    assert 0.2 < doc["wall"] < 0.7  # start-up and training, not the scoring after trained()
    assert doc["rows_per_second"] == pytest.approx(1000 / doc["wall"])
    assert doc["peak_rss_mb"] > 64
    assert doc["cpu_seconds"] > 0


def test_a_failed_child_is_an_error_row_naming_why(script: Path) -> None:
    failed = harness.spawn(script, "fails")
    assert failed == {"name": "fails", "error": "exit status 1: no such data file: x.parquet"}
    silent = harness.spawn(script, "silent")
    assert silent["error"].startswith("no result sent")


def test_send_outside_a_spawned_child_is_refused() -> None:
    code = "import harness; harness.send({})"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert "STREAMFIT_BENCH_RESULT unset" in proc.stderr


def test_report_compares_each_row_with_its_groups_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = [
        {"name": "floor", "kind": "a", "wall": 2.0, "msd": 4.0},
        {"name": "mine", "kind": "a", "wall": 3.0, "msd": 4.2},
        {"name": "peer", "kind": "a", "error": "exit status 1: [boom]"},
        {"name": "floor", "kind": "b", "wall": 1.0},
        {"name": "mine", "kind": "b", "wall": 4.0},
    ]
    columns = [
        harness.Column("wall s", "wall"),
        harness.Column("x floor", "wall", ".2f", vs="ratio"),
        harness.Column("floor / this", "wall", ".1f", vs="inverse", suffix="x"),
        harness.Column("msd vs floor", "msd", "+.0%", vs="change"),
    ]
    text = harness.report(results, columns, baseline="floor", group="kind")
    assert capsys.readouterr().out.strip() == text
    lines = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()]
    assert lines[0] == ["contender", "wall s", "x floor", "floor / this", "msd vs floor"]
    assert set(text.splitlines()[1]) == {"|", "-"}  # a Markdown table
    assert lines[2:] == [
        ["floor", "2.0", "1.00", "1.0x", "+0%"],
        ["mine", "3.0", "1.50", "0.7x", "+5%"],
        ["peer", "exit status 1: [boom]", "", "", ""],  # printed as written, not as markup
        ["floor", "1.0", "1.00", "1.0x", "-"],
        ["mine", "4.0", "4.00", "0.2x", "-"],
    ]


def test_a_column_may_name_its_own_baseline_and_rows_without_one_show_a_dash() -> None:
    results = [{"name": "exact", "msd": 2.0}, {"name": "fast", "msd": 3.0}]
    column = harness.Column("vs exact", "msd", "+.1%", vs="change", baseline="exact")
    text = harness.report(results, [column, harness.Column("x missing", "msd", vs="ratio")])
    assert "+50.0%" in text
    assert text.splitlines()[-1].split("|")[-2].strip() == "-"


def test_the_harness_doctests_pass() -> None:
    assert doctest.testmod(harness).failed == 0


@pytest.mark.parametrize(
    "name", sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name != "harness.py")
)
def test_every_benchmark_script_starts(name: str) -> None:
    """Imports and options of each script still hold (a benchmark itself takes minutes)."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
