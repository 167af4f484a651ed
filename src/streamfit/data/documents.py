"""Raw text documents as bag-of-words rows: the words of :func:`~streamfit.data.tokenize.tokenize`
counted, then given columns.

- With a vocabulary (:class:`~streamfit.data.vocabulary.Vocabulary`), a word's column is its
  id; a word the vocabulary lacks is counted as unknown (``Chunk.unknown``), not an error, and a
  stop word it lacks is neither (the vocabulary decides: a stop word it lists is kept).
- Without one, a word's column is its hash (:func:`~streamfit.data.hashing.hash_words`) in
  ``[0, width)`` (``feature_dim``), stop words dropped first; two words of a document may share
  a column. The row's counts are summed per column, so that every algorithm reads a row with
  distinct columns, and the words are kept beside them, one entry per distinct word (the
  ``words`` columns of :mod:`streamfit.data.chunk`), for a model to be shown as words.

Only what a block of documents holds is in memory; the hashing cache is bounded.

>>> rows = Bagger(Vocabulary(("gpu", "kernel")), None, stop_words=True)(["The GPU, the GPUs.", ""])
>>> rows.indptr.tolist(), rows.indices.tolist(), rows.values.tolist(), rows.unknown.tolist()
([0, 1, 1], [0], [1.0], [1, 0])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk, WordArrays
from streamfit.data.hashing import hash_words
from streamfit.data.tokenize import STOP_WORDS, tokenize
from streamfit.data.vocabulary import Vocabulary
from streamfit.errors import ConfigError

__all__ = ["Bagger", "Bags", "text_chunk"]

#: Words whose column the hashing cache keeps (then it starts afresh): memory stays bounded.
_CACHE_WORDS = 1 << 17


@dataclass
class Bags:
    """Documents as CSR rows (distinct columns per row, counts as values); ``unknown``: words of
    each row the vocabulary lacks (with one); ``words``: the words behind hashed rows."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    unknown: np.ndarray | None
    words: WordArrays | None


class Bagger:
    """Turns documents into :class:`Bags`, by ``vocabulary`` or else by hashing into ``width``
    columns; ``stop_words`` drops :data:`~streamfit.data.tokenize.STOP_WORDS`."""

    def __init__(self, vocabulary: Vocabulary | None, width: int | None, stop_words: bool) -> None:
        if vocabulary is None and width is None:
            raise ConfigError(
                "raw text without a vocabulary is hashed into feature_dim columns: set "
                "feature_dim, or give a vocabulary (--auxiliary PATH with vocab.txt)"
            )
        self.vocabulary = vocabulary
        self.width = width
        self.stop = STOP_WORDS if stop_words else frozenset()
        self._cache: dict[str, int] = {}

    def __call__(self, texts: Sequence[str]) -> Bags:
        if self.vocabulary is not None:
            return self._by_vocabulary(texts, self.vocabulary.index)
        return self._by_hashing(texts)

    def _by_vocabulary(self, texts: Sequence[str], index: dict[str, int]) -> Bags:
        ids: list[int] = []
        counts: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        unknown = np.zeros(len(texts), dtype=np.int64)
        for row, text in enumerate(texts):
            before = len(ids)
            for word, count in Counter(tokenize(text)).items():
                i = index.get(word)
                if i is not None:
                    ids.append(i)
                    counts.append(count)
                elif word not in self.stop:
                    unknown[row] += count
            lengths[row] = len(ids) - before
        rows = np.repeat(np.arange(len(texts)), lengths)
        id_array = np.asarray(ids, dtype=np.int64)
        order = np.lexsort((id_array, rows))
        return Bags(
            _indptr(lengths),
            id_array[order],
            np.asarray(counts, dtype=np.float32)[order],
            unknown,
            None,
        )

    def _by_hashing(self, texts: Sequence[str]) -> Bags:
        words: list[str] = []
        counts: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        stop = self.stop
        for row, text in enumerate(texts):
            counted = Counter(w for w in tokenize(text) if w not in stop)
            words.extend(counted)
            counts.extend(counted.values())
            lengths[row] = len(counted)
        rows = np.repeat(np.arange(len(texts)), lengths)
        columns = self._columns(words)
        # Within a row, by column (stable: words of one column in the order first seen).
        order = np.lexsort((columns, rows))
        rows, columns = rows[order], columns[order]
        word_counts = np.asarray(counts, dtype=np.float32)[order]
        new = np.ones(len(rows), dtype=bool)
        new[1:] = (rows[1:] != rows[:-1]) | (columns[1:] != columns[:-1])
        starts = np.flatnonzero(new)
        values = np.add.reduceat(word_counts, starts) if len(starts) else np.empty(0, np.float32)
        per_row = np.bincount(rows[starts], minlength=len(texts))
        word_array = np.empty(len(words), dtype=object)
        word_array[:] = words
        return Bags(
            _indptr(per_row),
            columns[starts],
            values.astype(np.float32),
            None,
            (_indptr(lengths), columns, word_counts, word_array[order]),
        )

    def _columns(self, words: list[str]) -> np.ndarray:
        """Each word's hashed column, from the cache where it can."""
        assert self.width is not None
        cache = self._cache
        distinct = list(dict.fromkeys(words))
        missing = [w for w in distinct if w not in cache]
        if missing:
            if len(cache) + len(missing) > _CACHE_WORDS:
                cache.clear()
                missing = distinct
            if len(missing) > _CACHE_WORDS:  # one block of more words than the cache holds
                return hash_words(words, self.width)
            cache.update(zip(missing, hash_words(missing, self.width).tolist(), strict=True))
        return np.fromiter((cache[w] for w in words), dtype=np.int64, count=len(words))


def _indptr(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def text_chunk(
    checker: RowChecker,
    bagger: Bagger,
    texts: Sequence[str],
    positions: np.ndarray,
    end: int,
    labels: np.ndarray | None = None,
    bad: list[int] | None = None,
    label_name: str = "label",
) -> Chunk:
    """The chunk of ``texts`` (documents at ``positions``), checked by ``checker``: in a
    bag-of-words channel a document without a counted word is a bad row."""
    bags = bagger(texts)
    if bagger.vocabulary is not None:
        lacks = "no word of the vocabulary"
    else:
        lacks = "no word but stop words" if bagger.stop else "no word"
    return checker.sparse(
        bags.indptr,
        bags.indices,
        bags.values,
        labels,
        positions,
        end,
        bad,
        label_name=label_name,
        hashed=bagger.vocabulary is None,
        words=bags.words,
        unknown=bags.unknown,
        empty=f"an empty document ({lacks}) in a bag-of-words channel",
    )
