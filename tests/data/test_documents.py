"""Documents to rows: by a vocabulary (unknown words counted, stop words as it says) or by
hashing (colliding words summed in the features, kept apart in the words)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from streamfit.data import documents
from streamfit.data.checks import RowChecker
from streamfit.data.documents import Bagger, text_chunk
from streamfit.data.hashing import hash_words
from streamfit.data.vocabulary import Vocabulary
from streamfit.errors import ConfigError, DataError

VOCAB = Vocabulary(["kernel", "gpu", "the", "driver"])


def rows(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> list[dict[int, float]]:
    return [
        dict(zip(indices[a:b].tolist(), values[a:b].tolist(), strict=True))
        for a, b in itertools.pairwise(indptr.tolist())
    ]


def test_a_vocabulary_gives_ids_and_counts_the_words_it_lacks() -> None:
    bags = Bagger(VOCAB, None, stop_words=True)(
        ["GPU driver for the GPU", "", "and of it", "kernel rust rust cobol"]
    )
    # "the" is a stop word the vocabulary lists: kept. "and", "of", "it": dropped, not unknown.
    assert rows(bags.indptr, bags.indices, bags.values) == [
        {1: 2.0, 2: 1.0, 3: 1.0},
        {},
        {},
        {0: 1.0},
    ]
    # "for": a stop word, not unknown; rust twice and cobol are.
    assert bags.unknown is not None and bags.unknown.tolist() == [0, 0, 0, 3]
    assert bags.words is None
    every = Bagger(VOCAB, None, stop_words=False)(["and of it"])
    assert every.unknown is not None and every.unknown.tolist() == [3]


def test_hashing_sums_colliding_words_and_keeps_them_apart() -> None:
    texts = ["alpha beta gamma alpha delta", "beta beta epsilon"]
    width = 2  # everything collides
    bags = Bagger(None, width, stop_words=True)(texts)
    for row, text in enumerate(texts):
        counts = Counter(text.split())
        lo, hi = bags.indptr[row], bags.indptr[row + 1]
        assert len(set(bags.indices[lo:hi].tolist())) == hi - lo  # distinct columns
        expected: Counter[int] = Counter()
        for word, count in counts.items():
            expected[int(hash_words([word], width)[0])] += count
        assert (
            dict(zip(bags.indices[lo:hi].tolist(), bags.values[lo:hi].tolist(), strict=True))
            == expected
        )
    assert bags.words is not None
    w_indptr, w_indices, w_counts, w_words = bags.words
    for row, text in enumerate(texts):
        lo, hi = w_indptr[row], w_indptr[row + 1]
        got = {
            w: (int(i), float(c))
            for w, i, c in zip(w_words[lo:hi], w_indices[lo:hi], w_counts[lo:hi], strict=True)
        }
        assert got == {
            w: (int(hash_words([w], width)[0]), float(c)) for w, c in Counter(text.split()).items()
        }
        assert np.all(np.diff(w_indices[lo:hi]) >= 0)  # by column within a row
    assert bags.unknown is None


def test_hashing_drops_stop_words_unless_asked_not_to() -> None:
    kept = Bagger(None, 1000, stop_words=False)(["the kernel"]).words
    dropped = Bagger(None, 1000, stop_words=True)(["the kernel"]).words
    assert kept is not None and dropped is not None
    assert sorted(kept[3]) == ["kernel", "the"] and list(dropped[3]) == ["kernel"]


def test_hashing_needs_a_width() -> None:
    with pytest.raises(ConfigError, match="set feature_dim, or give a vocabulary"):
        Bagger(None, None, stop_words=True)


def test_the_hashing_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "_CACHE_WORDS", 4)
    bagger = Bagger(None, 97, stop_words=False)
    texts = ["aa bb cc", "dd ee", "ff gg hh ii jj kk", "aa kk"]
    for text in texts:
        bags = bagger([text])
        assert bags.words is not None
        words = list(bags.words[3])
        assert bags.words[1].tolist() == hash_words(words, 97).tolist()
        assert len(bagger._cache) <= 4


def test_empty_documents_are_bad_rows_of_a_bag_of_words_channel_only() -> None:
    texts = ["kernel gpu", "the and of", "cobol"]
    positions = np.array([0, 3, 4])
    lenient = text_chunk(RowChecker(labelled=False), Bagger(VOCAB, None, True), texts, positions, 5)
    assert lenient.n_rows == 3 and lenient.unknown is not None
    assert lenient.unknown.tolist() == [0, 0, 1]
    checker = RowChecker(labelled=False, bag_of_words=True, file="docs.txt")
    with pytest.raises(DataError, match="no word of the vocabulary") as info:
        text_chunk(checker, Bagger(VOCAB, None, True), texts, positions, 5)
    assert info.value.row == 5  # position 4: "cobol" alone; "the" is in the vocabulary
    skipping = RowChecker(labelled=False, bag_of_words=True, on_bad_rows="skip")
    chunk = text_chunk(skipping, Bagger(None, 50, True), texts, positions, 5)
    assert chunk.positions.tolist() == [0, 4] and chunk.bad.tolist() == [3]
    words = chunk.batch.column("words").to_pylist()
    assert [sorted(w) for w in words] == [["gpu", "kernel"], ["cobol"]]
