"""benchmarks/ntm.py end to end on a tiny corpus: every contender trains in its own process
and is scored by the same functions; the learning curve is the one-read run; the scale run
reports peak memory per size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamfit.algorithms.ntm.evaluation import npmi
from tests.benchmarks import BENCHMARKS, import_benchmark
from tests.benchmarks.test_ntm_corpus import _lists

SCRIPT = BENCHMARKS / "ntm.py"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Debian-like lists of 150 packages on three themes, prepared as the benchmark does."""
    folder = tmp_path_factory.mktemp("ntm")
    ntm_corpus = import_benchmark("ntm_corpus")
    snapshot = folder / "d.jsonl"
    ntm_corpus.freeze(_lists(folder, n=150), snapshot)
    return ntm_corpus.prepare(snapshot, folder / "prepared", vocabulary=30, min_df=2)


def _run(*args: str) -> tuple[str, list[Any]]:
    out = Path(str(args[args.index("--json") + 1]))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


@pytest.fixture(scope="module")
def compared(corpus: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Any]]:
    """The benchmark run once over every contender (ProdLDA for one epoch)."""
    out = tmp_path_factory.mktemp("compared") / "r.json"
    return _run(
        *("--corpus", str(corpus.folder), "--topics", "3", "--prodlda-epochs", "1"),  # type: ignore[attr-defined]
        *("--set", "mini_batch_size=16", "--json", str(out)),
    )


def test_match_picks_every_contender_named_by_one_of_its_parts() -> None:
    ntm = import_benchmark("ntm")
    picked = [n for n in ntm.CONTENDERS if ntm.matches(n, "one read + replay (Parquet)|gensim")]
    assert picked == [
        "streamfit NTM, one read + replay (Parquet)",
        "gensim LdaModel, one pass",
    ]
    assert all(ntm.matches(n, None) for n in ntm.CONTENDERS)


def test_every_contender_runs_and_is_scored_the_same_way(
    corpus: object, compared: tuple[str, list[Any]]
) -> None:
    stdout, results = compared
    ntm = import_benchmark("ntm")
    assert [r["name"] for r in results] == list(ntm.CONTENDERS)
    words = corpus.words()  # type: ignore[attr-defined]
    ids = {w: i for i, w in enumerate(words)}
    indptr, indices, values = corpus.csr("test")  # type: ignore[attr-defined]
    test = np.zeros((len(indptr) - 1, len(words)))
    test[np.repeat(np.arange(len(indptr) - 1), np.diff(indptr)), indices] = values
    for r in results:
        assert "error" not in r, r
        assert r["k"] == 3 and r["peak_rss_mb"] > 50 and r["rows_per_second"] > 0
        top = [[ids[w] for w in topic.split()] for topic in r["topics"]]
        assert np.array(top).shape == (3, 10)
        assert r["npmi"] == pytest.approx(npmi(top, test))
        assert 0 < r["topic_diversity"] <= 1 and 0 < r["topic_uniqueness"] <= 1
        assert np.isfinite(r["perplexity"]) and r["perplexity"] > 1
    streamfit = results[0]
    assert streamfit["settings"] == {"mini_batch_size": 16}
    assert streamfit["train:rows"] == corpus.documents("train")  # type: ignore[attr-defined]
    for name in ntm.CONTENDERS:
        assert name in stdout
    header = next(line for line in stdout.splitlines() if line.startswith("| contender"))
    assert [c.strip() for c in header.split("|")[3:5]] == ["NPMI", "vs ProdLDA"]


def test_the_learning_curve_follows_the_one_read_run(
    corpus: object, compared: tuple[str, list[Any]], tmp_path: Path
) -> None:
    stdout, curves = _run(
        *("--corpus", str(corpus.folder), "--topics", "3", "--set", "mini_batch_size=16"),  # type: ignore[attr-defined]
        *("--curve", "--curve-step", "32", "--json", str(tmp_path / "c.json")),
    )
    assert [r["name"] for r in curves] == [
        "streamfit NTM, one read + replay (Parquet)",
        "gensim LdaModel, one pass",
    ]
    n = corpus.documents("train")  # type: ignore[attr-defined]
    for r in curves:
        assert [point[0] for point in r["curve"]] == [*range(32, n, 32), n]
    # stopped and resumed every 32 documents, it ends with the model of one uninterrupted read
    one_read = compared[1][0]
    assert curves[0]["curve"][-1][1] == one_read["npmi"] == curves[0]["npmi"]
    assert curves[0]["topics"] == one_read["topics"]
    assert "documents read" in stdout


def test_the_scale_run_reports_memory_for_each_size(tmp_path: Path) -> None:
    stdout, results = _run(
        *("--scale", "--rows", "300", "600", "--test-rows", "500", "--data", str(tmp_path)),
        *("--set", "mini_batch_size=100", "--set", "replay_capacity_mb=1"),
        "--json",
        str(tmp_path / "s.json"),
    )
    assert [r["rows"] for r in results] == [300, 600]
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == [
        "lda-300-train.parquet",
        "lda-500-test.parquet",
        "lda-600-train.parquet",
    ]
    for r in results:
        assert r["peak_rss_mb"] > 50 and -1 <= r["npmi"] <= 1
        assert r["true_topics_npmi"] > r["npmi"]
    assert "RSS vs first" in stdout
