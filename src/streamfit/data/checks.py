"""Row checks shared by every format: width, finiteness, labels, and for bags of words counts
and empty documents; raise or skip-and-count."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from streamfit.data.chunk import Chunk, WordArrays, dense_record_batch, sparse_record_batch
from streamfit.data.hashing import hash_ids
from streamfit.data.schema import NUMBER, STRING, Schema, duplicated
from streamfit.errors import DataError

__all__ = ["OnBadRows", "RowChecker"]

log = logging.getLogger(__name__)

OnBadRows = Literal["error", "skip"]
_WARN_LIMIT = 5
_EMPTY_DOCUMENT = "an empty document (no count above zero) in a bag-of-words channel"


def _column_name(j: int) -> str:
    return f"feature {j + 1}"


@dataclass
class RowChecker:
    """Validates rows of one read of a source; shared by all its files.

    ``n_features`` is fixed by the first row when not given. Positions are global over the
    source; ``file_offset`` converts them back to a row number within ``file``.
    """

    labelled: bool
    on_bad_rows: OnBadRows = "error"
    n_features: int | None = None
    max_index: int | None = None  # sparse: indices must be below this (feature_dim)
    #: Fold every sparse index (any int64) into ``[0, hash_space)`` (the hashing trick).
    hash_space: int | None = None
    file: str = "<input>"
    file_offset: int = 0
    row_label: str = "line"
    skipped: int = 0
    #: The channel's named feature columns: expected, else those of the first named file.
    columns: Schema | None = None
    #: Rows are bags of words (a topic model's): a negative count, or a row without any
    #: count (an empty document), is a bad row. Other algorithms take empty sparse rows.
    bag_of_words: bool = False

    def enter(self, file: str, offset: int, row_label: str) -> None:
        self.file, self.file_offset, self.row_label = file, offset, row_label

    def row_number(self, position: int) -> int:
        """The 1-based line/row/record number within the current file."""
        return position - self.file_offset + 1

    def error(self, position: int | None, field: str | None, message: str) -> DataError:
        row = None if position is None else self.row_number(position)
        return DataError(message, source=self.file, row=row, field=field, row_label=self.row_label)

    def bad(self, position: int, field: str | None, message: str) -> None:
        """A bad row: raise, or count it (and warn about the first few)."""
        self.report(self.error(position, field, message))

    def report(self, err: DataError) -> None:
        """A bad row's error: raised, or counted (readers whose positions are not lines,
        such as series read into windows, build the error themselves)."""
        if self.on_bad_rows == "error":
            raise err
        self.skipped += 1
        if self.skipped <= _WARN_LIMIT:
            log.warning("skipping bad row: %s", err)
        elif self.skipped == _WARN_LIMIT + 1:
            log.warning("skipping more bad rows; their count is reported in the metrics")

    def match_columns(self, found: Schema) -> list[str]:
        """The feature columns of the current file to read, in the channel's order (see
        :mod:`streamfit.data.schema`); the first file's set the channel's."""
        if self.columns is not None:
            return self.columns.order(found, self.file)
        duplicated(found.names, self.file)
        hashing = self.hash_space is not None
        for column in found.columns:
            if column.kind == NUMBER or (column.kind == STRING and hashing):
                continue
            fix = "drop it, or hash it (hash_features)" if column.kind == STRING else "drop it"
            raise DataError(
                f"column {column.name!r} is {column.type}, not a number: {fix}",
                source=self.file,
            )
        self.columns = found
        return found.names

    def fix_width(self, width: int, position: int) -> None:
        if self.n_features is None:
            if width == 0:  # a label alone, or an empty feature list: nothing to learn from
                raise self.error(position, None, "no features: a row needs at least one")
            self.n_features = width
        elif width != self.n_features:
            raise self.error(
                position, None, f"{width} features where the data has {self.n_features}"
            )

    def dense(
        self,
        x: np.ndarray,
        labels: np.ndarray | None,
        positions: np.ndarray,
        end: int,
        bad: list[int] | None = None,
        field_name: Callable[[int], str] = _column_name,
        label_name: str = "label",
    ) -> Chunk:
        """A chunk of the finite rows of ``x``; others are reported (``labels`` NaN = missing)."""
        bad_positions = list(bad or [])
        ok = np.isfinite(x).all(axis=1) if x.size else np.ones(len(x), dtype=bool)
        if self.bag_of_words:
            ok &= ~(x < 0).any(axis=1) & (x != 0).any(axis=1)
        if labels is not None:
            label_ok = np.isfinite(labels)
            ok &= label_ok
        if not ok.all():
            for i in np.flatnonzero(~ok):
                pos = int(positions[i])
                if labels is not None and not np.isfinite(labels[i]):
                    self.bad(pos, label_name, f"missing or non-numeric label ({labels[i]})")
                elif not np.isfinite(x[i]).all():
                    j = int(np.flatnonzero(~np.isfinite(x[i]))[0])
                    self.bad(pos, field_name(j), f"non-finite value ({x[i, j]})")
                elif (x[i] < 0).any():
                    j = int(np.flatnonzero(x[i] < 0)[0])
                    self.bad(pos, field_name(j), f"negative count ({x[i, j]}) in a bag of words")
                else:
                    self.bad(pos, None, _EMPTY_DOCUMENT)
                bad_positions.append(pos)
            x, positions = x[ok], positions[ok]
            labels = None if labels is None else labels[ok]
        return Chunk(
            dense_record_batch(x, labels),
            positions,
            end,
            np.asarray(sorted(bad_positions), dtype=np.int64),
        )

    def sparse(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray,
        labels: np.ndarray | None,
        positions: np.ndarray,
        end: int,
        bad: list[int] | None = None,
        label_name: str = "label",
        hashed: bool = False,
        words: WordArrays | None = None,
        unknown: np.ndarray | None = None,
        empty: str = _EMPTY_DOCUMENT,
    ) -> Chunk:
        """A chunk of the valid sparse rows; bad indices, values and labels are reported.
        With ``hash_space`` set, indices are folded into it (unless ``hashed`` already).
        ``words`` and ``unknown`` (raw text's) are per row too, and kept for the rows kept;
        ``empty`` says what an empty row of a bag-of-words channel is."""
        bad_positions = list(bad or [])
        n = len(indptr) - 1
        if self.hash_space is not None and not hashed:
            indices = hash_ids(indices, self.hash_space)
        entry_bad = ~np.isfinite(values) | (indices < 0)
        if self.max_index is not None:
            entry_bad |= indices >= self.max_index
        if self.bag_of_words:
            entry_bad |= values < 0
        ok = np.ones(n, dtype=bool)
        if entry_bad.any():
            rows_with_bad = np.searchsorted(indptr, np.flatnonzero(entry_bad), side="right") - 1
            ok[rows_with_bad] = False
        if self.bag_of_words:
            row_ids = np.repeat(np.arange(n), np.diff(indptr))
            ok &= np.bincount(row_ids[values != 0], minlength=n) > 0
        if labels is not None:
            ok &= np.isfinite(labels)
        if not ok.all():
            for i in np.flatnonzero(~ok):
                pos = int(positions[i])
                lo, hi = int(indptr[i]), int(indptr[i + 1])
                if labels is not None and not np.isfinite(labels[i]):
                    self.bad(pos, label_name, f"missing or non-numeric label ({labels[i]})")
                elif not entry_bad[lo:hi].any():
                    self.bad(pos, None, empty)
                else:
                    k = lo + int(np.flatnonzero(entry_bad[lo:hi])[0])
                    self.bad(pos, f"feature index {int(indices[k])}", self._why(indices, values, k))
                bad_positions.append(pos)
            keep = np.flatnonzero(ok)
            indptr, (indices, values) = _take_rows(indptr, keep, indices, values)
            if words is not None:
                w_indptr, (w_indices, w_counts, w_words) = _take_rows(words[0], keep, *words[1:])
                words = (w_indptr, w_indices, w_counts, w_words)
            positions = positions[keep]
            labels = None if labels is None else labels[keep]
            unknown = None if unknown is None else unknown[keep]
        return Chunk(
            sparse_record_batch(indptr, indices, values, labels, words),
            positions,
            end,
            np.asarray(sorted(bad_positions), dtype=np.int64),
            unknown,
        )

    def _why(self, indices: np.ndarray, values: np.ndarray, k: int) -> str:
        """What is wrong with entry ``k`` of a sparse row."""
        value = float(values[k])
        if not np.isfinite(value):
            return f"non-finite value ({value})"
        if indices[k] < 0 and self.max_index is None:
            return "negative index"
        if self.max_index is not None and not 0 <= indices[k] < self.max_index:
            return (
                f"index out of range [0, {self.max_index}) "
                "(set feature_dim, or check the file's index base)"
            )
        return f"negative count ({value}) in a bag of words"


def _take_rows(
    indptr: np.ndarray, rows: np.ndarray, *flat: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The CSR ``indptr`` and ``flat`` arrays of ``rows`` only."""
    counts = (indptr[1:] - indptr[:-1])[rows]
    take = (
        np.concatenate([np.arange(indptr[i], indptr[i + 1]) for i in rows])
        if len(rows)
        else np.empty(0, dtype=np.int64)
    )
    new_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return new_indptr, [a[take] for a in flat]
