"""benchmarks/serving.py end to end at its smallest: each server started, loaded by the
client, measured and stopped; the checks are on what the script measured and wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks import run_benchmark


@pytest.mark.slow  # three servers start, each importing PyTorch: about 30 s
def test_every_server_is_measured(tmp_path: Path) -> None:
    out = tmp_path / "serving.json"
    args = ("--features", "8", "--clients", "8", "--seconds", "1", "--warmup", "0.2")
    printed, written = run_benchmark("serving.py", *args, "--json", str(out))
    results = {r["server"]: r for r in written["results"]}
    assert list(results) == [
        "streamfit serve, batching 2 ms",
        "streamfit serve, no batching",
        "plain FastAPI, no batching",
    ]
    for name, r in results.items():
        assert r["requests_per_second"] > 0
        assert 0 < r["p50_ms"] <= r["p99_ms"]
        assert r["server_cpu_ms_per_row"] > 0
        assert name in printed
    assert results["streamfit serve, no batching"]["rows_per_call"] == 1.0
    assert results["streamfit serve, batching 2 ms"]["rows_per_call"] >= 1.0
    assert results["plain FastAPI, no batching"]["rows_per_call"] is None
