"""The Neural Topic Model's metrics: coherence, diversity and uniqueness of topics, as pure
functions of each topic's top word ids (most important first) and held-out documents.

The conventions, stated once because libraries differ widely:

- **NPMI** (:func:`npmi`): each topic's first ``top_n`` (10) words; ``D`` the number of
  documents given (rows, empty ones included), ``D(w)`` those containing ``w``, ``D(v, w)``
  those containing both (a document counts once however often a word occurs: co-occurrence
  within a whole document, no sliding window). For a pair,
  ``NPMI = log(D(v, w) D / (D(v) D(w))) / -log(D(v, w) / D)``; a pair that never co-occurs
  counts **0** (not -1), a pair in every document 1. Averaged over the topic's pairs, then
  over topics. No smoothing, natural logarithms (NPMI does not depend on the base).
- **Topic diversity** (:func:`topic_diversity`, Dieng et al. 2020): the share of distinct words
  among all topics' top ``top_n`` (25) words: 1 when no two topics share a word, ``1/K`` when
  all ``K`` topics show the same words.
- **Topic uniqueness** (:func:`topic_uniqueness`, Nan et al. 2019, as SageMaker's NTM logs
  it): ``cnt(w)`` the number of topics whose top ``top_n`` (10) words hold ``w``;
  ``TU(k) = mean over k's top words of 1 / cnt(w)``, averaged over topics; from ``1/K`` to 1.

``documents`` is any CSR matrix of documents by word id: a :class:`~streamfit.core.batch.CSR`
or a ``scipy.sparse`` CSR matrix (anything with ``indptr``, ``indices`` and ``values`` or
``data``); only whether an entry is positive matters.

>>> docs = CSR.from_dense(torch.tensor([[1.0, 2, 0, 0], [1, 1, 0, 0], [0, 0, 3, 1], [0, 0, 1, 1]]))
>>> npmi([[0, 1], [2, 3]], docs, top_n=2)
1.0
>>> round(npmi([[0, 2], [1, 3]], docs, top_n=2), 6)  # never together: 0, not -1
0.0
>>> topic_diversity([[0, 1], [1, 2]], top_n=2), topic_uniqueness([[0, 1], [1, 2]], top_n=2)
(0.75, 0.75)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from streamfit.algorithms.ntm.model import NTMModel, top_words, topic_logits
from streamfit.core.batch import CSR, Batch

__all__ = ["CoDocumentCounts", "NTMEvaluator", "npmi", "topic_diversity", "topic_uniqueness"]

#: Documents whose co-occurrences are counted at a time (bounds the dense block's memory).
_CHUNK_ROWS = 4096


def _top(top_ids: Any, top_n: int, what: str) -> np.ndarray:
    """``top_ids`` as a (topics, top_n) int64 array of its first ``top_n`` columns."""
    ids = np.asarray(top_ids.cpu() if isinstance(top_ids, torch.Tensor) else top_ids)
    if ids.ndim != 2 or ids.shape[0] == 0:
        raise ValueError(f"{what}: top_ids must be (topics, words), got shape {ids.shape}")
    if top_n < 1 or ids.shape[1] < top_n:
        raise ValueError(f"{what}: needs each topic's top {top_n} words, got {ids.shape[1]}")
    if not np.issubdtype(ids.dtype, np.integer) or (ids < 0).any():
        raise ValueError(f"{what}: top_ids must be word ids (integers from 0)")
    return ids[:, :top_n].astype(np.int64)


def topic_diversity(top_ids: Any, top_n: int = 25) -> float:
    """Distinct words among all topics' top ``top_n`` words, over ``topics x top_n``.

    >>> topic_diversity([[0, 1, 2], [0, 1, 2]], top_n=3)
    0.5
    """
    ids = _top(top_ids, top_n, "topic_diversity")
    return float(len(np.unique(ids)) / ids.size)


def topic_uniqueness(top_ids: Any, top_n: int = 10) -> float:
    """Mean over topics and their top ``top_n`` words of ``1 / (topics holding the word)``.

    >>> topic_uniqueness([[0, 1], [2, 3], [0, 4]], top_n=2)
    0.8333333333333334
    """
    ids = _top(top_ids, top_n, "topic_uniqueness")
    words, inverse = np.unique(ids, return_inverse=True)
    # A word repeated within one topic still counts that topic once.
    holders = np.zeros(len(words), dtype=np.int64)
    for row in inverse.reshape(ids.shape):
        holders[np.unique(row)] += 1
    return float((1.0 / holders[inverse.reshape(ids.shape)]).mean())


class CoDocumentCounts:
    """Document counts of each topic's top words and of their pairs, accumulated over
    batches of documents: what NPMI needs from a channel read once.

    >>> counts = CoDocumentCounts([[0, 1]], top_n=2)
    >>> counts.update(torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    >>> counts.documents, counts.pairs[0].tolist()
    (2, [[2, 1], [1, 1]])
    """

    def __init__(self, top_ids: Any, top_n: int = 10) -> None:
        ids = _top(top_ids, top_n, "npmi")
        if top_n < 2:
            raise ValueError("npmi: needs at least two words a topic")
        for k, row in enumerate(ids):
            if len(np.unique(row)) != len(row):
                raise ValueError(f"npmi: topic {k} repeats a word among its top {top_n}")
        self.words, inverse = np.unique(ids, return_inverse=True)
        self.columns = inverse.reshape(ids.shape)  # each top word's place among ``words``
        #: ``pairs[k, i, j]``: documents holding both topic k's words i and j (i = j: word i).
        self.pairs = np.zeros((ids.shape[0], top_n, top_n), dtype=np.int64)
        self.documents = 0

    def update(self, documents: Any) -> None:
        """Count the documents of a CSR matrix (or a dense tensor, one document a row)."""
        indptr, indices, values = _csr_arrays(documents)
        n = len(indptr) - 1
        for start in range(0, n, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, n)
            lo, hi = int(indptr[start]), int(indptr[stop])
            rows = np.repeat(np.arange(stop - start), np.diff(indptr[start : stop + 1]))
            cols = np.searchsorted(self.words, indices[lo:hi])
            found = (cols < len(self.words)) & (values[lo:hi] > 0)
            found[found] = self.words[cols[found]] == indices[lo:hi][found]
            present = np.zeros((stop - start, len(self.words)), dtype=np.float32)
            present[rows[found], cols[found]] = 1.0
            per_topic = present[:, self.columns].transpose(1, 0, 2)  # (topics, docs, top_n)
            # Exact in float32: a chunk's counts stay far below 2^24.
            both = np.matmul(per_topic.transpose(0, 2, 1), per_topic)
            self.pairs += np.rint(both).astype(np.int64)
        self.documents += n

    def topic_npmi(self) -> np.ndarray:
        """Each topic's mean NPMI over its pairs of top words."""
        if self.documents == 0:
            raise ValueError("npmi: no documents to count co-occurrences in")
        d = float(self.documents)
        counts = self.pairs.astype(np.float64)
        single = np.diagonal(counts, axis1=1, axis2=2)
        joint = counts / d
        with np.errstate(divide="ignore", invalid="ignore"):
            pmi = np.log(joint / (single[:, :, None] * single[:, None, :] / (d * d)))
            value = pmi / -np.log(joint)
        value = np.where(counts == 0, 0.0, value)
        value = np.where(counts == d, 1.0, value)  # in every document: -log p = 0
        n = counts.shape[1]
        upper = np.triu(np.ones((n, n), dtype=bool), k=1)
        out: np.ndarray = value[:, upper].mean(1)
        return out

    def npmi(self) -> float:
        return float(self.topic_npmi().mean())


def npmi(top_ids: Any, documents: Any, top_n: int = 10) -> float:
    """NPMI of the topics' top ``top_n`` words by co-occurrence in ``documents`` (conventions
    in the module's docstring): from -1 to 1, higher is more coherent.

    >>> import scipy.sparse
    >>> docs = scipy.sparse.csr_matrix([[1, 1, 0], [1, 0, 1], [0, 1, 0], [1, 1, 1]])
    >>> round(npmi([[0, 1, 2]], docs, top_n=3), 4)
    -0.0158
    """
    counts = CoDocumentCounts(top_ids, top_n)
    counts.update(documents)
    return counts.npmi()


def _csr_arrays(documents: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr, indices, values)`` of a CSR matrix or a dense 2-d tensor or array."""
    if isinstance(documents, torch.Tensor | np.ndarray):
        dense = np.asarray(documents.cpu() if isinstance(documents, torch.Tensor) else documents)
        if dense.ndim != 2:
            raise ValueError(f"npmi: documents must be 2-d, got shape {dense.shape}")
        rows, cols = np.nonzero(dense)
        indptr = np.zeros(dense.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=indptr[1:])
        return indptr, cols.astype(np.int64), dense[rows, cols].astype(np.float64)
    values = getattr(documents, "values", None)
    if values is None or callable(values):
        values = getattr(documents, "data", None)
    if values is None or not hasattr(documents, "indptr"):
        raise ValueError(
            f"npmi: documents must be a CSR matrix or a 2-d array, not {type(documents).__name__}"
        )
    arrays = []
    for a in (documents.indptr, documents.indices, values):
        arrays.append(np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a))
    indptr, indices, vals = arrays
    if len(indptr) and (indptr[0] != 0 or not math.isfinite(float(np.sum(vals, dtype=float)))):
        raise ValueError("npmi: documents are not a valid CSR matrix of finite counts")
    return indptr.astype(np.int64), indices.astype(np.int64), vals.astype(np.float64)


class NTMEvaluator:
    """A model's metrics on held-out documents, fed a batch at a time:

    - ``total_loss``: the mean over documents of the negative evidence lower bound
      (reconstruction + KL), at the posterior mean of each document's topic logits (no
      sampling, so that it is deterministic);
    - ``perplexity``: ``exp(sum of those losses / words in all documents)``;
    - ``npmi`` (top 10 words), ``topic_diversity`` (top 25) and ``topic_uniqueness`` (top 10),
      as the module's docstring states them.

    Empty documents are left out of every metric.
    """

    def __init__(self, model: NTMModel) -> None:
        self.model = model
        self.net = model.network()
        top, _ = top_words(topic_logits(model.tensors), 25)
        self.top = top.cpu().numpy()
        self.counts = CoDocumentCounts(self.top[:, :10]) if self.top.shape[1] >= 10 else None
        self.loss, self.words, self.documents = 0.0, 0.0, 0

    def update(self, batch: Batch) -> None:
        x = batch.features.to(self.model.device)
        if not isinstance(x, CSR):
            x = CSR.from_dense(x.float())
        lengths = torch.zeros(x.n_rows, device=x.device).index_add_(0, x.row_ids(), x.values)
        keep = lengths > 0
        if not bool(keep.all()):
            x = x.select_rows(keep.nonzero().squeeze(1))
        if x.n_rows == 0:
            return
        with torch.no_grad():
            recon, kl = self.net.loss(x, sample=False)
        self.loss += float((recon + kl).double().sum())
        self.words += float(x.values.double().sum())
        self.documents += x.n_rows
        if self.counts is not None:
            self.counts.update(x)

    def result(self) -> dict[str, float]:
        if self.documents == 0:
            return {}
        out = {
            "total_loss": self.loss / self.documents,
            "perplexity": math.exp(min(self.loss / self.words, 700.0)),
        }
        if self.counts is not None:
            out["npmi"] = self.counts.npmi()
        if self.top.shape[1] >= 25:
            out["topic_diversity"] = topic_diversity(self.top)
        if self.top.shape[1] >= 10:
            out["topic_uniqueness"] = topic_uniqueness(self.top)
        return out
