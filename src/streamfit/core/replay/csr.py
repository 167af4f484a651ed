"""A replay reservoir of sparse rows of any length, in a packed buffer of non-zeros."""

from __future__ import annotations

import math

import torch

from streamfit.core.batch import CSR, Batch
from streamfit.core.replay.reservoir import KEY_BYTES, Reservoir, allocate_keys
from streamfit.core.state import State
from streamfit.errors import ConfigError

__all__ = ["CSRReservoir", "create_csr", "csr_capacity"]

#: Per row besides its non-zeros: key, label, start, length.
_ROW_BYTES = KEY_BYTES + 4 + 8 + 8
#: Per non-zero: an int64 index and a float32 value.
_NNZ_BYTES = 12
#: Non-zeros moved at a time by a compaction.
COMPACT_CHUNK = 1 << 18


class CSRReservoir(Reservoir):
    """Sparse rows (and their labels) in a packed buffer of ``1.5 x nnz`` non-zeros."""

    @property
    def max_row_nnz(self) -> int:
        return max(1, self.capacity_nnz // 8)

    @property
    def labelled(self) -> bool:
        return bool(self.meta["labelled"])

    @property
    def n_cols(self) -> int:
        return int(self.meta["n_cols"])

    def offer(
        self,
        rows: CSR,
        labels: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
    ) -> None:
        if rows.n_cols != self.n_cols:
            raise ConfigError(f"replay: rows of {rows.n_cols} columns, expected {self.n_cols}")
        if self.labelled and labels is None:
            raise ConfigError("replay: this reservoir keeps labels, the rows have none")
        keys = self.keys_for(rows.n_rows, weights) if keys is None else keys
        self.meta["offered"] = self.offered + 1
        lengths = rows.indptr[1:] - rows.indptr[:-1]
        # A row longer than an eighth of the capacity is never kept: a row that does not fit
        # cuts every row of lower key (the price of a choice independent of order), so the
        # capacity left unused stays under an eighth.
        keys = torch.where(lengths.to(keys.device) > self.max_row_nnz, -math.inf, keys)
        evict, take = self._choose(keys, lengths)
        if take.numel() == 0 and evict.numel() == 0:
            return
        slots = self._place(keys, evict, take)
        self._t("length")[slots] = 0  # not yet written: a compaction must not copy them
        if take.numel() == 0:
            return
        device = self._t("keys").device
        chosen = rows.select_rows(take.to(rows.indptr.device)).to(device)
        need = chosen.nnz
        if int(self.meta["end"]) + need > self._t("indices").numel():
            self._compact()
        end = int(self.meta["end"])
        self._t("indices")[end : end + need] = chosen.indices
        self._t("values")[end : end + need] = chosen.values.to(self._t("values").dtype)
        self._t("start")[slots] = chosen.indptr[:-1] + end
        self._t("length")[slots] = chosen.indptr[1:] - chosen.indptr[:-1]
        if self.labelled:
            assert labels is not None
            self._t("labels")[slots] = labels.detach()[take.to(labels.device)].to(device)
        self.meta["end"] = end + need

    def _compact(self) -> None:
        """Move the held rows' non-zeros to the front of the buffer, in the order they lie
        there. Called when an append does not fit: the slack of half the capacity means at
        least that many non-zeros are appended between two compactions, so each costs O(1)
        per non-zero. In place, a chunk of :data:`COMPACT_CHUNK` non-zeros at a time: a row
        only moves towards the front and the chunks go front to back, so a chunk never
        writes where a later one reads, and the temporary memory is a chunk's, not the
        buffer's (a copy of a full 64 MB reservoir was 180 MB more at the peak)."""
        held = self.held()
        start = self._t("start")[held]
        order = torch.argsort(start)
        held, start = held[order], start[order]
        length = self._t("length")[held]
        new_start = torch.cumsum(length, 0) - length
        n = int(length.sum())
        indices, values = self._t("indices"), self._t("values")
        row_ends = torch.cumsum(length, 0)
        for lo in range(0, n, COMPACT_CHUNK):
            hi = min(n, lo + COMPACT_CHUNK)
            dst = torch.arange(lo, hi, device=start.device)
            row = torch.searchsorted(row_ends, dst, right=True)  # the row each one is in
            src = dst - new_start[row] + start[row]
            indices[lo:hi] = indices[src]
            values[lo:hi] = values[src]
        self._t("start")[held] = new_start
        self.meta["end"] = n

    def rows(self, slots: torch.Tensor) -> CSR:
        """The rows in ``slots``, in that order."""
        start, length = self._t("start")[slots], self._t("length")[slots]
        indptr = torch.zeros(slots.numel() + 1, dtype=torch.int64, device=start.device)
        torch.cumsum(length, 0, out=indptr[1:])
        nnz = int(indptr[-1])
        offsets = torch.repeat_interleave(start - indptr[:-1], length, output_size=nnz)
        take = torch.arange(nnz, device=start.device) + offsets
        return CSR(indptr, self._t("indices")[take], self._t("values")[take], self.n_cols)

    def sample(self, n: int) -> tuple[CSR, torch.Tensor | None] | None:
        """Up to ``n`` rows drawn uniformly (with replacement), with their labels."""
        slots = self._sample_slots(n)
        if slots is None:
            return None
        return self.rows(slots), self._t("labels")[slots] if self.labelled else None

    def merge(self, other: Reservoir) -> None:
        """Fold ``other``'s rows in with their own keys: the union's top keys."""
        assert isinstance(other, CSRReservoir)
        self._check_merge(other)
        held = other.held()
        labels = other._t("labels")[held] if other.labelled else None
        offered = self.offered
        self.offer(other.rows(held), labels, keys=other._t("keys")[held])
        self.meta["offered"] = offered
        self._merged_floor(other)

    def offer_batch(self, batch: Batch, weights: torch.Tensor | None = None) -> None:
        f = batch.features
        self.offer(f if isinstance(f, CSR) else CSR.from_dense(f), batch.labels, weights)

    def sample_batch(self, n: int) -> Batch | None:
        drawn = self.sample(n)
        return None if drawn is None else Batch(drawn[0], drawn[1], replayed=True)


def create_csr(
    state: State,
    n_cols: int,
    nnz: int,
    rows: int,
    labelled: bool = True,
    prefix: str = "replay",
    device: torch.device | str = "cpu",
) -> CSRReservoir:
    """A reservoir of up to ``rows`` sparse rows holding up to ``nnz`` non-zeros in all.
    Its memory is about ``29 rows + 18 nnz`` bytes (the buffer has half again as much room)."""
    if nnz < 1:
        raise ConfigError("replay: a CSR reservoir needs room for at least one non-zero")
    allocate_keys(state, prefix, rows, device)
    buffer = nnz + nnz // 2
    t = state.tensors
    t[f"{prefix}.indices"] = torch.zeros(buffer, dtype=torch.int64, device=device)
    t[f"{prefix}.values"] = torch.zeros(buffer, dtype=torch.float32, device=device)
    t[f"{prefix}.start"] = torch.zeros(rows, dtype=torch.int64, device=device)
    t[f"{prefix}.length"] = torch.zeros(rows, dtype=torch.int64, device=device)
    if labelled:
        t[f"{prefix}.labels"] = torch.zeros(rows, dtype=torch.float32, device=device)
    state.meta[prefix] = {
        "kind": "csr",
        "slots": rows,
        "nnz": nnz,
        "n_cols": n_cols,
        "labelled": labelled,
        "offered": 0,
        "end": 0,
    }
    return CSRReservoir(state, prefix)


def csr_capacity(capacity_bytes: int, row_nnz: float) -> tuple[int, int]:
    """``(nnz, rows)`` for a CSR reservoir of about ``capacity_bytes`` whose rows hold
    ``row_nnz`` non-zeros on average.

    >>> csr_capacity(209_000, 10.0)
    (10000, 1000)
    """
    rows = int(capacity_bytes // (_ROW_BYTES + 1.5 * _NNZ_BYTES * row_nnz))
    return max(1, int(rows * row_nnz)), rows
