"""A mini-batch of rows as tensors on one device: dense, or sparse in CSR form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["CSR", "Batch", "Features", "Words"]


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

    def unique_indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The distinct column indices, sorted, and where each stored index is among them:
        what a lazy (touched rows only) update of a weight table needs.

        On the CPU numpy's vectorised sort does this in 0.9 ms for a 30,000-index batch
        where ``torch.unique`` takes 1.5 ms: the largest single cost of a sparse update.

        >>> CSR.from_dense(torch.tensor([[0.0, 2.0, 1.0], [0.0, 3.0, 0.0]])).unique_indices()
        (tensor([1, 2]), tensor([0, 1, 0]))
        """
        if self.indices.device.type != "cpu":
            found, where = torch.unique(self.indices, return_inverse=True)
            return found, where
        rows, inverse = np.unique(self.indices.numpy(), return_inverse=True)
        return torch.from_numpy(rows), torch.from_numpy(inverse.reshape(-1))

    def columns(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch seen column by column, from one sort of the indices: the distinct
        columns ``uniq``, each stored value's place among them ``inverse``, the stored values
        in column order ``order`` and where each column's run starts in it ``starts`` (so
        ``embedding_bag(row_ids()[order], T, starts)`` sums rows of ``T`` per column: the
        transposed product a gradient needs, without a scatter).

        >>> x = CSR.from_dense(torch.tensor([[0.0, 2.0, 1.0], [0.0, 3.0, 0.0]]))
        >>> [t.tolist() for t in x.columns()]
        [[1, 2], [0, 1, 0], [0, 2, 1], [0, 2]]
        """
        if self.indices.device.type != "cpu":
            return _columns_torch(self.indices)
        idx = self.indices.numpy()
        bits = max(1, len(idx).bit_length())
        if len(idx) and int(idx.max()) < (1 << (62 - bits)) and int(idx.min()) >= 0:
            # Sorting (index, position) packed in one int64 is a stable argsort at the price
            # of a plain sort of distinct keys: 0.3 ms instead of 1.6 for 30,000 indices.
            keys = np.sort((idx << bits) | np.arange(len(idx)))
            order_np = keys & ((1 << bits) - 1)
            ordered_np = keys >> bits
        else:
            order_np = np.argsort(idx, kind="stable")
            ordered_np = idx[order_np]
        new_np = np.ones(len(idx), dtype=bool)
        new_np[1:] = ordered_np[1:] != ordered_np[:-1]
        group_np = np.cumsum(new_np) - 1
        inverse_np = np.empty_like(group_np)
        inverse_np[order_np] = group_np
        return (
            torch.from_numpy(ordered_np[new_np]),
            torch.from_numpy(inverse_np),
            torch.from_numpy(order_np),
            torch.from_numpy(np.flatnonzero(new_np)),
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
class Words:
    """The words behind a batch of hashed text (:mod:`streamfit.data.tokenize`).

    ``entries`` holds one entry per distinct word of each row: the column hashing gave it and
    its count in the row, so a column repeats within a row where two of its words collided.
    ``words[j]`` is the word of entry ``j``. The batch's ``features`` are these entries with
    each row's repeated columns added up (what every algorithm reads), so the words are kept
    here rather than beside ``features.indices``. They stay on the CPU, where a
    :class:`~streamfit.core.sketch.WordSketch` counts them, whatever the batch's device.

    >>> w = Words(CSR.from_dense(torch.tensor([[2.0, 1.0], [0.0, 3.0]])), ["gpu", "cuda", "rust"])
    >>> w.select_rows(torch.tensor([1])).words
    ['rust']
    """

    entries: CSR
    words: list[str]

    def select_rows(self, rows: torch.Tensor) -> Words:
        """The words of the given rows, in the given order."""
        rows = rows.to(self.entries.indptr.device)
        ip = self.entries.indptr.tolist()
        picked = [j for r in rows.tolist() for j in range(ip[r], ip[r + 1])]
        return Words(self.entries.select_rows(rows), [self.words[j] for j in picked])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Words:
        return Words(self.entries.to(device, non_blocking=non_blocking), self.words)


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows handed to an algorithm's ``update``.

    ``end_position`` is where the source stands after this batch (rows consumed in the epoch,
    skipped bad rows included): a checkpoint taken after this batch resumes from there.
    ``skipped`` counts the bad rows skipped between the previous batch and the end of this one.
    ``words``, for raw text hashed into columns, says which words each row's counts came from;
    ``unknown_words``, for raw text read with a vocabulary, counts the words of this batch's
    rows that the vocabulary lacks. ``replayed`` marks rows drawn from a replay reservoir:
    rows already trained on once, and checked then.
    """

    features: Features
    labels: torch.Tensor | None = None
    end_position: int = 0
    skipped: int = 0
    words: Words | None = None
    unknown_words: int = 0
    replayed: bool = False

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
        words = None if self.words is None else self.words.select_rows(rows)
        return Batch(feats, labels, words=words)


def _columns_torch(
    indices: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:meth:`CSR.columns` in torch ops, for accelerators (the CPU path uses numpy)."""
    order = torch.argsort(indices, stable=True)
    ordered = indices[order]
    new = torch.ones_like(ordered, dtype=torch.bool)
    new[1:] = ordered[1:] != ordered[:-1]
    group = torch.cumsum(new, 0) - 1
    inverse = torch.empty_like(group).index_copy_(0, order, group)
    return ordered[new], inverse, order, new.nonzero().squeeze(1)
