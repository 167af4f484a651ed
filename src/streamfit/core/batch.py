"""A mini-batch of rows as tensors on one device: dense, or sparse in CSR form."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["CSR", "Batch", "Features"]


@dataclass(frozen=True, slots=True)
class CSR:
    """Compressed sparse rows: row ``i`` holds ``values[indptr[i]:indptr[i+1]]`` at columns
    ``indices[indptr[i]:indptr[i+1]]``.

    Kept as plain tensors rather than ``torch.sparse_csr_tensor`` because the algorithms need
    the gather/scatter forms (``embedding_bag``, ``index_add_``) more than sparse matmul.

    >>> x = CSR.from_dense(torch.tensor([[0.0, 2.0], [3.0, 0.0]]))
    >>> x.indices.tolist(), x.values.tolist(), x.row_ids().tolist()
    ([1, 0], [2.0, 3.0], [0, 1])
    """

    indptr: torch.Tensor  # int64, (n_rows + 1,)
    indices: torch.Tensor  # int64, (nnz,)
    values: torch.Tensor  # float32, (nnz,)
    n_cols: int

    @property
    def n_rows(self) -> int:
        return int(self.indptr.numel()) - 1

    @property
    def nnz(self) -> int:
        return int(self.indices.numel())

    @property
    def device(self) -> torch.device:
        return self.values.device

    def row_ids(self) -> torch.Tensor:
        """The row of each stored value."""
        counts = self.indptr[1:] - self.indptr[:-1]
        return torch.repeat_interleave(
            torch.arange(self.n_rows, device=self.indptr.device), counts, output_size=self.nnz
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> CSR:
        return CSR(
            self.indptr.to(device, non_blocking=non_blocking),
            self.indices.to(device, non_blocking=non_blocking),
            self.values.to(device, non_blocking=non_blocking),
            self.n_cols,
        )

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.n_rows, self.n_cols, dtype=self.values.dtype, device=self.device)
        out.index_put_((self.row_ids(), self.indices), self.values, accumulate=True)
        return out

    def select_rows(self, rows: torch.Tensor) -> CSR:
        """The given rows, in the given order."""
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        counts = ends - starts
        indptr = torch.zeros(rows.numel() + 1, dtype=torch.int64, device=self.indptr.device)
        torch.cumsum(counts, 0, out=indptr[1:])
        nnz = int(indptr[-1])
        offsets = torch.repeat_interleave(starts - indptr[:-1], counts, output_size=nnz)
        take = torch.arange(nnz, device=self.indptr.device) + offsets
        return CSR(indptr, self.indices[take], self.values[take], self.n_cols)

    @staticmethod
    def from_dense(x: torch.Tensor) -> CSR:
        rows, cols = x.nonzero(as_tuple=True)
        indptr = torch.zeros(x.shape[0] + 1, dtype=torch.int64, device=x.device)
        torch.cumsum(torch.bincount(rows, minlength=x.shape[0]), 0, out=indptr[1:])
        return CSR(indptr, cols, x[rows, cols], int(x.shape[1]))


Features = torch.Tensor | CSR


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows handed to an algorithm's ``update``.

    ``end_position`` is where the source stands after this batch (rows consumed in the epoch,
    skipped bad rows included): a checkpoint taken after this batch resumes from there.
    ``skipped`` counts the bad rows skipped between the previous batch and the end of this one.
    """

    features: Features
    labels: torch.Tensor | None = None
    end_position: int = 0
    skipped: int = 0

    @property
    def n_rows(self) -> int:
        return self.features.n_rows if isinstance(self.features, CSR) else self.features.shape[0]

    @property
    def n_features(self) -> int:
        return self.features.n_cols if isinstance(self.features, CSR) else self.features.shape[1]

    @property
    def is_sparse(self) -> bool:
        return isinstance(self.features, CSR)

    @property
    def device(self) -> torch.device:
        return self.features.device

    def dense_features(self) -> torch.Tensor:
        return self.features.to_dense() if isinstance(self.features, CSR) else self.features

    def select(self, rows: torch.Tensor) -> Batch:
        """A batch of the given rows (positions are not meaningful in the result)."""
        feats: Features = (
            self.features.select_rows(rows)
            if isinstance(self.features, CSR)
            else self.features[rows]
        )
        labels = None if self.labels is None else self.labels[rows]
        return Batch(feats, labels)
