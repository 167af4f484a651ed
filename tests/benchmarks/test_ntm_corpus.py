"""benchmarks/ntm_corpus.py: Debian's translation lists parsed, frozen and preprocessed the
same way for every contender, on a small list written here in apt's format."""

from __future__ import annotations

import collections
import doctest
import gzip
import hashlib
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import scipy.io
from sklearn.datasets import load_svmlight_file

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
THEMES = {
    "kernel": "kernel driver module device firmware boot usb disk memory interrupt",
    "web": "browser html server http page css javascript cookie proxy url",
    "music": "audio player sound midi song playlist volume mixer codec stereo",
}


@pytest.fixture(scope="module")
def corpus_module() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import ntm_corpus
    finally:
        sys.path.remove(str(BENCHMARKS))
    return ntm_corpus


def _record(package: str, synopsis: str, paragraphs: list[str]) -> str:
    body = "\n .\n".join(" " + p for p in paragraphs)
    return f"Package: {package}\nDescription-md5: 0\nDescription-en: {synopsis}\n{body}\n"


def _lists(folder: Path, n: int = 60) -> list[str]:
    """Two lists in apt's formats (gzip and plain) of ``n`` packages, each on one theme with
    the common word 'package' in every description; pkg000 is in both lists, aaa-copy has
    pkg007's description under another synopsis, nodesc has no long description, and odd's
    words are each in no other document."""
    rng = np.random.default_rng(0)
    records, paragraphs = [], []
    for i in range(n):
        theme = list(THEMES)[i % 3]
        words = rng.choice(THEMES[theme].split(), size=6).tolist()
        paragraphs.append([f"The {' '.join(words[:3])} package {i}", " ".join(words[3:])])
        records.append(_record(f"pkg{i:03d}", f"synopsis{i} only", paragraphs[-1]))
    records.append(_record("aaa-copy", "other synopsis", paragraphs[7]))
    records.append("Package: nodesc\nDescription-md5: 1\nDescription-en: only a synopsis\n")
    records.append(_record("odd", "odd one", ["Zebras quietly juggle"]))
    main = folder / "x_main_i18n_Translation-en.gz"
    main.write_bytes(gzip.compress("\n".join(records[: n // 2]).encode()))
    security = folder / "x_security_i18n_Translation-en"
    security.write_text("\n".join(records[:1] + records[n // 2 :]))
    return [str(main), str(security)]


def test_records_become_documents_of_their_long_descriptions(
    corpus_module: ModuleType, tmp_path: Path
) -> None:
    docs = corpus_module.freeze(_lists(tmp_path), tmp_path / "d.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert lines == docs
    assert [d["package"] for d in docs] == sorted(d["package"] for d in docs)
    packages = [d["package"] for d in docs]
    # 60 packages and odd; pkg000 is listed twice, pkg007 shares aaa-copy's description (the
    # first package names it) and nodesc has no long description
    assert len(packages) == 61 and "aaa-copy" in packages
    assert not {"nodesc", "pkg007"} & set(packages)
    texts = [d["text"] for d in docs]
    assert len(set(texts)) == len(texts)
    pkg5 = next(d["text"] for d in docs if d["package"] == "pkg005")
    assert "synopsis" not in pkg5 and " . " not in pkg5
    assert pkg5.startswith("The ") and pkg5.count(" ") == 8  # two paragraphs, one line


def test_the_snapshot_is_written_once_and_then_reused(
    corpus_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus_module, "LISTS", str(tmp_path / "*Translation-en*"))
    _lists(tmp_path)
    path, digest, count = corpus_module.snapshot(tmp_path / "snap" / "d.jsonl")
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert count == 61
    for listed in tmp_path.glob("*Translation-en*"):
        listed.unlink()  # the lists change upstream: the frozen snapshot does not
    assert corpus_module.snapshot(path) == (path, digest, count)


def test_the_tokenizer_keeps_lower_case_words_without_stop_words(
    corpus_module: ModuleType,
) -> None:
    assert corpus_module.tokenize("The Kernel's DRIVER, and its firmware_2") == [
        "kernel",
        "s",
        "driver",
        "firmware_2",
    ]
    assert doctest.testmod(corpus_module).failed == 0


def _prepared(corpus_module: ModuleType, tmp_path: Path, **settings: object) -> object:
    snap = tmp_path / "d.jsonl"
    if not snap.exists():
        corpus_module.freeze(_lists(tmp_path), snap)
    return corpus_module.prepare(snap, tmp_path / "prepared", **settings)


def test_the_vocabulary_drops_words_too_common_or_too_rare(
    corpus_module: ModuleType, tmp_path: Path
) -> None:
    corpus = _prepared(corpus_module, tmp_path, vocabulary=12, min_df=3, test_fraction=0.25)
    words = corpus.words()  # type: ignore[attr-defined]
    assert "package" not in words  # in every description: over half the documents
    assert not any(w.isdigit() for w in words)  # each number in one document only
    assert len(words) == 12 and set(words) <= set(" ".join(THEMES.values()).split())
    train = [
        corpus_module.tokenize(line)
        for line in corpus.path("train", "txt").read_text().splitlines()
    ]  # type: ignore[attr-defined]
    counts = collections.Counter(w for doc in train for w in doc if w in words)
    assert [counts[w] for w in words] == sorted(counts.values(), reverse=True)


def test_every_format_holds_the_same_documents(corpus_module: ModuleType, tmp_path: Path) -> None:
    corpus = _prepared(corpus_module, tmp_path, vocabulary=40, min_df=2, test_fraction=0.25)
    manifest = corpus.manifest  # type: ignore[attr-defined]
    # odd is left with no word of the vocabulary: dropped from whichever split drew it
    assert manifest["train_documents"] + manifest["test_documents"] == 60
    assert manifest["train_dropped_empty"] + manifest["test_dropped_empty"] == 1
    words = corpus.words()  # type: ignore[attr-defined]
    ids = {w: i for i, w in enumerate(words)}
    texts = {}
    for split in ("train", "test"):
        path = corpus.path  # type: ignore[attr-defined]
        lines = path(split, "txt").read_text().splitlines()
        texts[split] = set(lines)
        expected = np.zeros((len(lines), len(words)))
        for row, line in enumerate(lines):
            for w in corpus_module.tokenize(line):
                if w in ids:
                    expected[row, ids[w]] += 1
        indptr, indices, values = corpus.csr(split)  # type: ignore[attr-defined]
        parquet = np.zeros_like(expected)
        parquet[np.repeat(np.arange(len(lines)), np.diff(indptr)), indices] = values
        libsvm, labels = load_svmlight_file(str(path(split, "libsvm")), n_features=len(words))
        mm = scipy.io.mmread(str(path(split, "mm"))).toarray()
        assert (expected.sum(1) > 0).all()
        np.testing.assert_array_equal(parquet, expected)
        np.testing.assert_array_equal(libsvm.toarray(), expected)
        np.testing.assert_array_equal(mm, expected)
        assert (labels == 0).all()
        assert manifest[f"{split}_tokens"] == expected.sum()
    assert not texts["train"] & texts["test"]


def test_a_prepared_folder_is_reused_unless_a_setting_changes(
    corpus_module: ModuleType, tmp_path: Path
) -> None:
    first = _prepared(corpus_module, tmp_path, vocabulary=10, min_df=2, seed=1)
    train = first.path("train", "txt")  # type: ignore[attr-defined]
    written = train.stat().st_mtime_ns
    _prepared(corpus_module, tmp_path, vocabulary=10, min_df=2, seed=1)
    assert train.stat().st_mtime_ns == written
    before = train.read_text()
    _prepared(corpus_module, tmp_path, vocabulary=10, min_df=2, seed=2)
    assert train.read_text() != before  # another split
