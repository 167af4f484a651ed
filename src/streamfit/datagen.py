"""Deterministic generated data sets with known structure, for the demo, tests and benchmarks.

Generated in blocks, so sets larger than memory can be written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from streamfit.data.chunk import dense_record_batch, sparse_record_batch
from streamfit.data.source import detect_format
from streamfit.data.writers import write

__all__ = [
    "ClusterTask",
    "FMTask",
    "LDATask",
    "LinearTask",
    "LowRankTask",
    "SeriesTask",
    "cluster_task",
    "fm_task",
    "lda_task",
    "linear_task",
    "low_rank_task",
    "series_task",
    "sparse_click_task",
    "write_batches",
]


@dataclass(frozen=True)
class LinearTask:
    """Rows ``x ~ N(mean, diag(scale^2))`` labelled by a known linear model plus noise."""

    n_features: int
    weights: np.ndarray
    bias: float
    kind: str  # binary | regression | multiclass
    num_classes: int = 2
    noise: float = 1.0
    seed: int = 0
    sparse: bool = False
    nnz: int = 30

    def blocks(
        self, n_rows: int, block: int = 100_000, offset: int = 0
    ) -> Iterator[pa.RecordBatch]:
        """``n_rows`` rows in record batches; ``offset`` picks another, disjoint stretch."""
        done = 0
        while done < n_rows:
            m = min(block, n_rows - done)
            rng = np.random.default_rng([self.seed, offset + done])
            yield self._block(rng, m)
            done += m

    def _block(self, rng: np.random.Generator, m: int) -> pa.RecordBatch:
        d = self.n_features
        if self.sparse:
            # One id per field, Zipf-distributed within the field's own range of indices.
            width = d // self.nnz
            ids = (rng.zipf(1.3, size=(m, self.nnz)) - 1) % width
            indices = ids + np.arange(self.nnz) * width
            values = np.ones((m, self.nnz), dtype=np.float32)
            score = (self.weights[indices] * values).sum(1) + self.bias
        else:
            scale = 1.0 + (np.arange(d) % 7)  # features of different scales
            mean = (np.arange(d) % 5) - 2.0
            x = (rng.standard_normal((m, d)) * scale + mean).astype(np.float32)
            score = x @ self.weights + self.bias
        if self.kind == "binary":
            p = 1 / (1 + np.exp(-score))
            y = (rng.random(m) < p).astype(np.float32)
        elif self.kind == "multiclass":
            logits = score[:, None] * np.linspace(-1, 1, self.num_classes)[None, :]
            logits = logits + rng.gumbel(size=logits.shape) * self.noise
            y = logits.argmax(1).astype(np.float32)
        else:
            y = (score + rng.standard_normal(m) * self.noise).astype(np.float32)
        if self.sparse:
            indptr = np.arange(0, m * self.nnz + 1, self.nnz)
            return sparse_record_batch(indptr, indices.ravel(), values.ravel(), y)
        return dense_record_batch(x, y)


def linear_task(
    n_features: int,
    kind: str = "binary",
    seed: int = 0,
    num_classes: int = 2,
    noise: float = 1.0,
    signal: float = 1.5,
) -> LinearTask:
    """A dense task with features of mixed scales and means, whose score has standard
    deviation about ``signal`` (1.5: best AUC near 0.80; 3: near 0.90)."""
    rng = np.random.default_rng(seed)
    scale = 1.0 + (np.arange(n_features) % 7)
    weights = rng.standard_normal(n_features) * signal / (scale * np.sqrt(n_features))
    mean = (np.arange(n_features) % 5) - 2.0
    bias = -float(mean @ weights)
    return LinearTask(n_features, weights, bias, kind, num_classes, noise, seed)


def sparse_click_task(n_features: int = 1 << 20, nnz: int = 30, seed: int = 0) -> LinearTask:
    """Click-like rows: ``nnz`` categorical fields, one Zipf-distributed id each, one-hot in
    ``n_features`` columns (each field owns ``n_features // nnz`` of them)."""
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal(n_features) * 0.6
    return LinearTask(n_features, weights, -0.5, "binary", seed=seed, sparse=True, nnz=nnz)


@dataclass(frozen=True)
class FMTask:
    """Click-like rows labelled by a known factorization machine: ``n_fields`` categorical
    fields, each with one Zipf-distributed id a row (field ``f`` has ``vocab[f]`` ids), every
    (field, id) a one-hot feature placed by the hashing trick in ``n_features`` columns.
    The label is 1 with probability ``sigmoid(score)``, the score the true FM's."""

    n_features: int
    vocab: np.ndarray  # ids per field
    w0: float
    w: np.ndarray  # (n_features,)
    v: np.ndarray  # (n_features, k)
    zipf: float
    seed: int = 0

    def indices(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """``(m, n_fields)`` hashed feature indices of ``m`` new rows."""
        from streamfit.data.hashing import hash_ids

        ids = (rng.zipf(self.zipf, size=(m, len(self.vocab))) - 1) % self.vocab
        keys = ids + (np.arange(len(self.vocab)) << 32)  # field in the high bits
        return hash_ids(keys.ravel(), self.n_features).reshape(m, -1)

    def score(self, indices: np.ndarray) -> np.ndarray:
        """The true model's logit for rows of one-hot ``indices`` (m, n_fields)."""
        vs = self.v[indices]  # (m, F, k)
        pair = 0.5 * ((vs.sum(1) ** 2).sum(1) - (vs * vs).sum((1, 2)))
        out: np.ndarray = self.w0 + self.w[indices].sum(1) + pair
        return out

    def blocks(
        self,
        n_rows: int,
        block: int = 100_000,
        offset: int = 0,
        scores: list[np.ndarray] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """``n_rows`` sparse rows; ``scores``, if given, receives each block's true logits."""
        done = 0
        fields = len(self.vocab)
        while done < n_rows:
            m = min(block, n_rows - done)
            rng = np.random.default_rng([self.seed, 2, offset + done])
            idx = self.indices(rng, m)
            score = self.score(idx)
            if scores is not None:
                scores.append(score)
            y = (rng.random(m) < 1 / (1 + np.exp(-score))).astype(np.float32)
            indptr = np.arange(0, m * fields + 1, fields)
            values = np.ones(m * fields, dtype=np.float32)
            yield sparse_record_batch(indptr, idx.ravel(), values, y)
            done += m


def fm_task(
    n_features: int = 1 << 20,
    n_fields: int = 30,
    num_factors: int = 8,
    seed: int = 0,
    zipf: float = 1.5,
    linear: float = 1.0,
    pairwise: float = 1.5,
) -> FMTask:
    """A factorization-machine task whose linear part of the score has standard deviation
    about ``linear`` and whose pairwise part about ``pairwise``. Vocabularies grow
    geometrically over the fields, from 4 to about 100,000 ids."""
    rng = np.random.default_rng(seed)
    vocab = np.round(4 * (25_000 ** (np.arange(n_fields) / max(n_fields - 1, 1)))).astype(np.int64)
    w = rng.standard_normal(n_features) * linear / np.sqrt(n_fields)
    pairs = n_fields * (n_fields - 1) / 2
    sigma_v = (pairwise**2 / (pairs * num_factors)) ** 0.25
    v = rng.standard_normal((n_features, num_factors)) * sigma_v
    return FMTask(n_features, vocab, -0.5, w, v.astype(np.float64), zipf, seed)


def write_batches(path: str | os.PathLike[str], batches: Iterator[pa.RecordBatch]) -> int:
    """Write record batches to ``path`` in the format its name says."""
    fmt = detect_format(str(path))
    with open(path, "wb") as f:
        return write(fmt, batches, f)


@dataclass(frozen=True)
class ClusterTask:
    """Rows from ``k`` Gaussian clusters of unit variance; the label is the cluster's index."""

    centers: np.ndarray  # (k, d)
    seed: int = 0

    def blocks(
        self, n_rows: int, block: int = 100_000, offset: int = 0
    ) -> Iterator[pa.RecordBatch]:
        done = 0
        while done < n_rows:
            m = min(block, n_rows - done)
            rng = np.random.default_rng([self.seed, 1, offset + done])
            which = rng.integers(0, len(self.centers), m)
            x = self.centers[which] + rng.standard_normal((m, self.centers.shape[1]))
            yield dense_record_batch(x.astype(np.float32), which.astype(np.float32))
            done += m


def cluster_task(
    n_features: int = 50, k: int = 25, seed: int = 0, separation: float = 6.0
) -> ClusterTask:
    """``k`` clusters whose centres lie about ``separation`` standard deviations apart."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, n_features)) * separation / np.sqrt(2)
    return ClusterTask(centers, seed)


@dataclass(frozen=True)
class LowRankTask:
    """Rows ``z @ basis * scales + noise``: a rank-``r`` signal in ``d`` dimensions."""

    basis: np.ndarray  # (r, d), orthonormal rows
    scales: np.ndarray  # (r,)
    mean: np.ndarray  # (d,)
    noise: float = 1.0
    seed: int = 0

    def blocks(
        self, n_rows: int, block: int = 100_000, offset: int = 0
    ) -> Iterator[pa.RecordBatch]:
        r, d = self.basis.shape
        done = 0
        while done < n_rows:
            m = min(block, n_rows - done)
            rng = np.random.default_rng([self.seed, 2, offset + done])
            z = rng.standard_normal((m, r)) * self.scales
            x = z @ self.basis + self.mean + rng.standard_normal((m, d)) * self.noise
            yield dense_record_batch(x.astype(np.float32), None)
            done += m


def low_rank_task(
    n_features: int = 200, rank: int = 10, seed: int = 0, noise: float = 1.0
) -> LowRankTask:
    """A rank-``rank`` signal (scales 20 down to 5) plus isotropic noise, around a mean."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n_features, rank)))
    scales = np.linspace(20.0, 5.0, rank)
    mean = rng.standard_normal(n_features) * 3
    return LowRankTask(q.T.copy(), scales, mean, noise, seed)


@dataclass(frozen=True)
class LDATask:
    """Documents from a true LDA model: each document draws topic proportions from
    ``Dirichlet(alpha)`` and a length from ``1 + Poisson(doc_length - 1)``, each word a topic
    from those proportions and the word from that topic's distribution (a row of ``topics``).
    Rows are bag-of-words counts, sparse (word ids sorted), unlabelled."""

    topics: np.ndarray  # (num_topics, n_features), rows sum to 1
    alpha: float
    doc_length: float
    seed: int = 0

    @property
    def n_features(self) -> int:
        return int(self.topics.shape[1])

    def blocks(
        self, n_rows: int, block: int = 100_000, offset: int = 0
    ) -> Iterator[pa.RecordBatch]:
        """``n_rows`` documents in record batches; ``offset`` picks another, disjoint stretch."""
        done = 0
        while done < n_rows:
            m = min(block, n_rows - done)
            rng = np.random.default_rng([self.seed, 3, offset + done])
            yield sparse_record_batch(*self.documents(rng, m), None)
            done += m

    def documents(
        self, rng: np.random.Generator, m: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indptr, indices, counts)`` of ``m`` new documents."""
        k, v = self.topics.shape
        theta = rng.dirichlet(np.full(k, self.alpha), size=m)
        lengths = 1 + rng.poisson(max(self.doc_length - 1, 0), size=m)
        doc = np.repeat(np.arange(m), lengths)
        # One searchsorted for all words: row i's cumulative distribution is shifted to
        # (i, i + 1], so the rows lie end to end in one increasing array.
        z = _draw(np.cumsum(theta, 1) + np.arange(m)[:, None], doc, rng, k)
        word = _draw(self._cumulative_topics(), z, rng, v)
        keys, counts = np.unique(doc * v + word, return_counts=True)
        indptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // v, minlength=m), out=indptr[1:])
        return indptr, keys % v, counts.astype(np.float32)

    def _cumulative_topics(self) -> np.ndarray:
        k = self.topics.shape[0]
        out: np.ndarray = np.cumsum(self.topics, 1) + np.arange(k)[:, None]
        return out


def _draw(shifted: np.ndarray, rows: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """For each of ``rows``, an outcome from that row of ``shifted`` (cumulative
    distributions, row ``i`` shifted by ``i``)."""
    found = np.searchsorted(shifted.ravel(), rows + rng.random(len(rows)), side="right")
    out: np.ndarray = np.clip(found - rows * n, 0, n - 1)  # rounding at a row's end
    return out


def lda_task(
    n_features: int = 1000,
    num_topics: int = 20,
    seed: int = 0,
    alpha: float = 0.1,
    eta: float = 0.05,
    doc_length: float = 50.0,
) -> LDATask:
    """An LDA model of ``num_topics`` topics over ``n_features`` words, each topic drawn from
    ``Dirichlet(eta)`` (small ``eta``: topics concentrated on few words), documents from
    ``Dirichlet(alpha)`` proportions, ``doc_length`` words on average.

    >>> task = lda_task(100, 5, doc_length=20)
    >>> batch = next(task.blocks(3))
    >>> batch.num_rows, task.topics.shape
    (3, (5, 100))
    """
    rng = np.random.default_rng([seed, 4])
    topics = rng.dirichlet(np.full(n_features, eta), size=num_topics)
    return LDATask(topics, alpha, doc_length, seed)


@dataclass(frozen=True)
class SeriesTask:
    """Series of SageMaker's shape (``start``, ``target``, ``cat``), a row a series: a level
    drawn per series (log-normal), a season of ``season`` steps, a slight trend and noise;
    a share ``intermittent`` of them are counts that are mostly zero. ``cat`` is the series'
    group (``groups`` of them), which sets its season's phase.

    ``packed`` (a :class:`~streamfit.core.windows.SeriesReading` as a dict of ``freq``,
    ``context``, ``prediction``) gives the training windows of the series instead, as packed
    rows (what a forecaster trains on), so that rows can be made without a file.
    """

    length: int = 40
    season: int = 4
    groups: int = 5
    intermittent: float = 0.2
    freq: str = "Q"
    seed: int = 0
    packed: dict[str, Any] | None = None

    def blocks(self, n_rows: int, block: int = 10_000, offset: int = 0) -> Iterator[pa.RecordBatch]:
        """``n_rows`` series (or their windows, ``packed``) in record batches."""
        done = 0
        while done < n_rows:
            m = min(block, n_rows - done)
            rng = np.random.default_rng([self.seed, 5, offset + done])
            targets, cats = self.series(rng, m)
            if self.packed is None:
                yield pa.record_batch(
                    {
                        "start": pa.array(["2000-01-01 00:00:00"] * m),
                        "target": pa.array(list(targets), pa.list_(pa.float32())),
                        "cat": pa.array([[int(c)] for c in cats], pa.list_(pa.int64())),
                    }
                )
            else:
                yield self._windows(targets, cats)
            done += m

    def series(self, rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        """``(targets (m, length), groups (m,))`` of ``m`` new series."""
        t = np.arange(self.length)
        cats = rng.integers(0, self.groups, size=m)
        level = np.exp(rng.normal(1.5, 1.0, size=(m, 1)))
        phase = 2 * np.pi * cats[:, None] / self.groups
        shape = 1 + 0.5 * np.sin(2 * np.pi * t / self.season + phase) + 0.005 * t
        noise = rng.normal(0, 0.1, size=(m, self.length))
        y = np.maximum(level * (shape + noise), 0)
        counts = rng.random(m) < self.intermittent
        sparse = rng.poisson(0.3 * shape[counts] * (rng.random((counts.sum(), self.length)) < 0.3))
        y[counts] = sparse
        return y.astype(np.float32), cats

    def _windows(self, targets: np.ndarray, cats: np.ndarray) -> pa.RecordBatch:
        from streamfit.core.calendar import lags_for_frequency, num_time_features
        from streamfit.core.windows import SeriesReading, WindowLayout
        from streamfit.data.checks import RowChecker
        from streamfit.data.series_windows import SeriesRules, WindowBuilder
        from streamfit.data.text import ReadContext

        spec = dict(self.packed or {})
        layout = WindowLayout(
            history=max(lags_for_frequency(self.freq)),
            context=int(spec["context"]),
            prediction=int(spec["prediction"]),
            time_features=num_time_features(self.freq),
        )
        reading = SeriesReading(self.freq, layout)
        builder = WindowBuilder(ReadContext(RowChecker(labelled=False), 0, series=reading), "row")
        rules = SeriesRules(reading)
        start = rules.start_period("2000-01-01 00:00:00")
        chunks: list[pa.RecordBatch] = []
        for y in targets:
            series = rules.series(start, y.astype(np.float64), None, [])
            chunks.extend(chunk.batch for chunk in builder.add(series))
        last = builder.flush()
        if last is not None:
            chunks.append(last.batch)
        return pa.Table.from_batches(chunks).combine_chunks().to_batches()[0]


def series_task(
    length: int = 40,
    season: int = 4,
    seed: int = 0,
    packed: dict[str, Any] | None = None,
    freq: str = "Q",
) -> SeriesTask:
    """Seasonal series (see :class:`SeriesTask`).

    >>> batch = next(series_task(12).blocks(3))
    >>> batch.num_rows, batch.column("target")[0].values.to_numpy().shape
    (3, (12,))
    """
    return SeriesTask(length=length, season=season, seed=seed, packed=packed, freq=freq)
