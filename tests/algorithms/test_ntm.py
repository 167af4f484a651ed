"""The Neural Topic Model: its metrics, network, streaming learner, model and outputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse
import torch

from streamfit.algorithms.ntm import evaluation
from streamfit.algorithms.ntm.evaluation import (
    CoDocumentCounts,
    npmi,
    topic_diversity,
    topic_uniqueness,
)
from streamfit.core.batch import CSR

# -- metrics -----------------------------------------------------------------------------------


def _npmi_by_hand(top: list[list[int]], docs: list[set[int]]) -> float:
    """The README's NPMI, one pair at a time over sets of words."""
    d = len(docs)
    topics = []
    for words in top:
        values = []
        for v, w in itertools.combinations(words, 2):
            dv = sum(v in doc for doc in docs)
            dw = sum(w in doc for doc in docs)
            both = sum(v in doc and w in doc for doc in docs)
            if both == 0:
                values.append(0.0)
            elif both == d:
                values.append(1.0)
            else:
                values.append(math.log(both * d / (dv * dw)) / -math.log(both / d))
        topics.append(sum(values) / len(values))
    return sum(topics) / len(topics)


def _random_corpus(seed: int, n_docs: int = 300, vocab: int = 40) -> scipy.sparse.csr_matrix:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.gamma(0.3, 1.0, size=(n_docs, vocab)))
    counts[:, 3] = 0  # a word that never occurs
    return scipy.sparse.csr_matrix(counts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_npmi_is_the_stated_formula(seed: int) -> None:
    docs = _random_corpus(seed)
    rng = np.random.default_rng(seed + 10)
    top = [list(rng.choice(40, 10, replace=False)) for _ in range(6)]
    top[0][1] = 3  # pairs with a word no document holds count 0
    sets = [set(row.indices[row.data > 0].tolist()) for row in docs]
    assert npmi(top, docs) == pytest.approx(_npmi_by_hand(top, sets), abs=1e-12)


def test_npmi_reads_any_csr_the_same_and_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _random_corpus(5)
    top = [[0, 1, 2, 4, 5], [6, 7, 8, 9, 10]]
    expected = npmi(top, docs, top_n=5)
    dense = torch.tensor(docs.toarray(), dtype=torch.float32)
    assert npmi(top, CSR.from_dense(dense), top_n=5) == pytest.approx(expected, abs=1e-12)
    assert npmi(top, dense, top_n=5) == pytest.approx(expected, abs=1e-12)
    monkeypatch.setattr(evaluation, "_CHUNK_ROWS", 7)  # many chunks of a batch
    counts = CoDocumentCounts(top, top_n=5)
    for start in range(0, 300, 64):  # and many batches
        counts.update(docs[start : start + 64])
    assert counts.documents == 300
    assert counts.npmi() == pytest.approx(expected, abs=1e-12)


def test_npmi_uses_the_first_top_n_words_and_bounds() -> None:
    docs = scipy.sparse.csr_matrix(np.eye(4) + np.eye(4, k=1))
    top = [[0, 1, 2, 3]]
    assert npmi(top, docs, top_n=2) == npmi([[0, 1]], docs, top_n=2)
    together = scipy.sparse.csr_matrix(np.ones((5, 3)))
    assert npmi([[0, 1, 2]], together, top_n=3) == 1.0  # in every document
    apart = scipy.sparse.csr_matrix(np.eye(3))
    assert npmi([[0, 1, 2]], apart, top_n=3) == 0.0  # never together: 0, not -1


@pytest.mark.parametrize(
    ("top", "docs", "message"),
    [
        ([[0, 1]], np.ones((2, 2)), "top 10 words"),
        ([0, 1], np.ones((2, 2)), "topics, words"),
        ([[0.5, 1.0]], np.ones((2, 2)), "word ids"),
        ([[0, 0, 1]], np.ones((2, 2)), "repeats a word"),
        ([[0, 1]], np.ones(2), "2-d"),
        ([[0, 1]], np.ones((0, 2)), "no documents"),
        ([[0, 1]], "docs", "CSR matrix"),
    ],
)
def test_npmi_refuses_what_it_cannot_measure(top: object, docs: object, message: str) -> None:
    top_n = 10 if message == "top 10 words" else 2 if message != "repeats a word" else 3
    with pytest.raises(ValueError, match=message):
        npmi(top, docs, top_n=top_n)


def test_topic_diversity_and_uniqueness() -> None:
    distinct = np.arange(50).reshape(2, 25)
    assert topic_diversity(distinct) == 1.0
    assert topic_uniqueness(distinct) == 1.0
    same = np.tile(np.arange(25), (4, 1))
    assert topic_diversity(same) == 0.25
    assert topic_uniqueness(same) == 0.25  # 1/K: every word in all K topics
    # Topic uniqueness looks at the top 10 only: topics that differ beyond them are not unique.
    tail = np.concatenate([same[:, :10], 100 + np.arange(60).reshape(4, 15)], 1)
    assert topic_uniqueness(tail) == 0.25
    assert topic_diversity(tail) == (10 + 60) / 100
    with pytest.raises(ValueError, match="top 25 words"):
        topic_diversity(same[:, :10])
    assert topic_diversity(torch.tensor(same)) == 0.25
