"""benchmarks/deepar_rows.py end to end at its smallest: a tiny generated panel trained as
records, as rows ordered by time and as rows ordered by item; generated series read as records
and as rows; items read through a table that holds those in progress and evicts finished ones.
Each run is its own process; the checks are on what the script measured and wrote."""

from __future__ import annotations

import csv
import doctest
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.benchmarks import BENCHMARKS, generated_panel, import_benchmark, run_benchmark

SCRIPT = BENCHMARKS / "deepar_rows.py"
SERIES = 20
FAST = ("--set", "mini_batch_size=32", "--set", "replay=1", "--set", "replay_capacity_mb=1")
#: 5 items start each month, of 24 to 48 steps: at most 240 in progress; a table of 0.15 MB
#: holds about 295 monthly items, so 600 items evict the finished ones and lose nothing.
MEMORY = ("--items", "300", "600", "--cohort", "5", "--table-mb", "0.15")


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """20 generated monthly series of 30 to 40 months, the last 12 held out."""
    folder = tmp_path_factory.mktemp("deepar_rows") / "tiny"
    return generated_panel(folder, SERIES, seed=5, lengths=(30, 40))


@pytest.fixture(scope="module")
def run(panel: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """One run of every part, at the smallest."""
    work = tmp_path_factory.mktemp("work")
    return run_benchmark(
        "deepar_rows.py",
        *("--panel", str(panel.folder), "--seeds", "1", *FAST),
        *("--read-items", "40", "--read-steps", "30", "--repeats", "1", *MEMORY),
        *("--work", str(work), "--json", str(work / "r.json")),
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_the_rows_are_the_records_steps_ordered_by_time(panel: Any, tmp_path: Path) -> None:
    rows = import_benchmark("deepar_rows")
    files = rows.panel_to_rows(panel, tmp_path)
    for split in ("train", "test"):
        by_time, by_item = _rows(files[split]), _rows(files[f"{split}-by-item"])
        assert sorted(by_time, key=lambda r: (r["item_id"], r["timestamp"])) == by_item
        assert [(r["timestamp"], r["item_id"]) for r in by_time] == sorted(
            (r["timestamp"], r["item_id"]) for r in by_time
        )
        for key, record in zip(panel.meta["keys"], panel.series(split), strict=True):
            mine = [r for r in by_item if r["item_id"] == key]
            assert [float(r["target"]) for r in mine] == record["target"]
            assert [int(r["cat_0"]) for r in mine] == record["cat"] * len(mine)
            start = np.datetime64(record["start"][:7], "M")
            months = start + np.arange(len(mine))
            assert [r["timestamp"] for r in mine] == [f"{m}-01" for m in months]


def test_quality_trains_each_format_on_the_same_windows(
    run: tuple[str, dict[str, Any]], panel: Any
) -> None:
    stdout, doc = run
    runs = doc["quality"]["runs"]
    assert [r["format"] for r in runs] == ["records", "rows", "rows-by-item"]
    for r in runs:
        assert "error" not in r, r
        assert r["hyperparameters"]["mini_batch_size"] == 32
        assert np.isfinite(r["own_wql"]) and 0 < r["own_wql"] < 2
        assert r["peak_rss_mb"] > 50 and r["wall"] > 0
    # the same series, so the same windows (one at each step after the first horizon)
    windows = sum(len(r["target"]) - 12 for r in panel.series("train"))
    assert [(r["windows"], r["steps"]) for r in runs] == [(windows, runs[0]["steps"])] * 3
    assert "wQL vs records" in stdout and "mean of 1 seeds" in stdout


def test_read_builds_the_same_windows_from_both_formats(run: tuple[str, dict[str, Any]]) -> None:
    stdout, doc = run
    read = doc["read"]
    assert [(r["setting"], r["format"]) for r in read] == [
        ("daily", "records"),
        ("daily", "rows"),
        ("monthly", "records"),
        ("monthly", "rows"),
    ]
    steps = {"daily": (1114, 7), "monthly": (61, 12)}
    for r in read:
        assert "error" not in r, r
        length, horizon = steps[r["setting"]]
        assert r["window_steps"] == length
        assert r["windows"] == 40 * (30 - horizon)  # each step after the first horizon
        assert r["windows_per_second"] == pytest.approx(r["windows"] / r["read_seconds"])
    assert "speed vs records" in stdout


def test_memory_evicts_finished_items_and_loses_no_window(
    run: tuple[str, dict[str, Any]],
) -> None:
    stdout, doc = run
    small, large = doc["memory"]
    for r in (small, large):
        assert "error" not in r, r
        assert r["windows"] == r["expected"] > 0
        assert r["table_items"] < 600 and r["in_progress"] < r["table_items"]
    assert (small["items"], small["evicted"]) == (
        300,
        "yes" if small["table_items"] < 300 else "no",
    )
    assert (large["items"], large["evicted"]) == (600, "yes")
    assert large["rows"] > small["rows"] and "RSS vs fewest items" in stdout


def test_the_doctests_pass() -> None:
    assert doctest.testmod(import_benchmark("deepar_rows")).failed == 0
