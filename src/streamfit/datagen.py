"""Deterministic generated data sets with known structure, for the demo, tests and benchmarks.

Generated in blocks, so sets larger than memory can be written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from streamfit.data.chunk import dense_record_batch, sparse_record_batch
from streamfit.data.source import detect_format
from streamfit.data.writers import write

__all__ = [
    "ClusterTask",
    "LinearTask",
    "LowRankTask",
    "cluster_task",
    "linear_task",
    "low_rank_task",
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
