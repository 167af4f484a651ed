"""Series that arrive in pieces: long-format rows, one observation each, as a SQL query ordered
by time returns them, read into the same windows as series records
(:mod:`streamfit.data.series`).

A row has ``item_id`` (any value; its text names the series), ``timestamp`` (a string as a
record's ``start``, or a timestamp or date), ``target`` (a number; empty, null or NaN is
missing) and, where the model has them, ``cat_0 .. cat_{k-1}`` and ``dynamic_feat_0 ..
dynamic_feat_{d-1}``. An item's rows must come in time order, on the grid of ``time_freq``
from its first row; items may interleave freely, and a step with no row is missing.

A bounded table (:class:`SeriesTable`) keeps each item's last steps: as many as a window
holds (training), or a window and a season (a test, for MASE's seasonal error). It holds as
many items as ``table_bytes`` allows, the least recently updated evicted first, so memory
is fixed whatever the number of items; an item evicted and seen again starts afresh.

- Training: a row that completes a window (its step is the last of a prediction range that
  has a step before it, every ``stride`` steps from the item's first) gives that window. A
  piece of rows (a reader's block, at most ``block_bytes`` of windows) gives its windows
  item by item, as records would, at the piece's positions from its first row's on: rows
  ordered by time would otherwise put one step of many items in each batch. A window's
  ``extra`` is the mean absolute value of its item so far.
- A test: at the end of the read, each item's last ``prediction_length`` steps are held out
  and forecast from the rest, as for a record; every item must still be in the table.

A position counts rows across the source's files. Resuming at position ``p`` reads the rows
before it again into the table, in the same pieces, building windows only in the piece that
holds ``p``, so the windows after ``p`` are exactly those of an uninterrupted read.

>>> import pyarrow as pa, torch
>>> from streamfit.core.windows import SeriesReading, WindowLayout
>>> from streamfit.data.checks import RowChecker
>>> from streamfit.data.chunk import dense_arrays
>>> layout = WindowLayout(history=1, context=2, prediction=1, time_features=4)
>>> table = SeriesTable(SeriesReading("D", layout))
>>> rows = pa.table({"item_id": ["a", "b", "a", "a", "b"],
...                  "timestamp": ["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-03",
...                                "2024-01-02"],
...                  "target": ["1", "7", "2", "", "8"]})
>>> checker = RowChecker(labelled=False, file="rows.csv")
>>> [chunk] = list(table.add(rows, checker, 0, 0))
>>> chunk.positions.tolist(), chunk.end   # rows 2, 3 (item a) and 4 (b) complete one
([0, 1, 2], 5)
>>> layout.unpack(torch.tensor(dense_arrays(chunk.batch))).target.tolist()
[[0.0, 0.0, 1.0, 2.0], [0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 7.0, 8.0]]
"""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view

from streamfit.core.calendar import age_feature, calendar_features
from streamfit.core.windows import SeriesReading
from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk, dense_record_batch
from streamfit.data.series_columns import TARGET, TIMESTAMP, CheckedRows, check_rows
from streamfit.data.series_windows import SeriesRules
from streamfit.errors import ConfigError, DataError

__all__ = ["NOT_FOR_FORECASTS", "SeriesTable"]

log = logging.getLogger(__name__)

#: Why long-format rows cannot be forecast from (a forecast answer names no item).
NOT_FOR_FORECASTS = (
    "forecasts are made from whole series, one record a line (JSON Lines or Parquet with "
    "start and target), not long-format rows"
)

#: Rows folded at once: about this many kept steps (so about as many window values) each.
_PIECE_POSITIONS = 1 << 22
#: Steps a part of a block lays out (items x the most steps one moves on, half of it): bounds
#: a block's memory where some items skip far more steps than the rest.
_BLOCK_POSITIONS = 1 << 22
#: Python bookkeeping per item (its key, the table's entry), beyond its arrays.
_ENTRY_OVERHEAD = 200
#: The accumulators of an item: |target| sum and count; seasonal and lag-1 differences' sums
#: and counts (a test's seasonal error).
_ABS, _ABS_N, _SEASON, _SEASON_N, _LAG1, _LAG1_N = range(6)


class SeriesTable:
    """Each item's recent steps, bounded by ``reading.table_bytes``, and the windows its
    rows complete (see the module docstring). One table serves one read of a source, across
    its files."""

    def __init__(
        self,
        reading: SeriesReading,
        shard: tuple[int, int] | None = None,
        block_bytes: int = 8 << 20,
    ) -> None:
        if reading.mode == "forecast":
            raise ConfigError(NOT_FOR_FORECASTS)
        self.reading = reading
        #: ``(k, n)``: only the items whose CRC-32 of their text is ``k`` modulo ``n`` (one
        #: of ``n`` workers' share; a row of another's counts as a row, nothing more).
        self.shard = shard
        self.block_bytes = block_bytes  # about the most a chunk of windows holds
        self.rules = SeriesRules(reading)
        self.freq = self.rules.freq
        layout = self.layout = reading.layout
        self.season = max(1, reading.seasonality)
        # A test needs a season before its held-out steps for the seasonal error.
        testing = reading.mode == "test"
        self.keep = (
            max(layout.length, layout.prediction + self.season) if testing else layout.length
        )
        # Windows are float32: a test keeps float64 for its seasonal error's differences.
        self.dtype: type = np.float64 if testing else np.float32
        size = np.dtype(self.dtype).itemsize
        per_item = size * self.keep * (1 + layout.dynamic) + 8 * (layout.cat + 10) + _ENTRY_OVERHEAD
        self.capacity = max(2, reading.table_bytes // per_item)
        self.slots: OrderedDict[str, int] = OrderedDict()
        self._used = 0  # slots handed out (the table is full at capacity)
        self.evicted = 0
        self.rows = 0  # rows of the read so far (positions run on across files)
        self._bad: list[int] = []  # a test's bad rows, reported with its windows at the end
        self._rejected: list[int] = []  # bad rows a reader found, for the next chunk

    # -- the table's arrays -------------------------------------------------------------------

    def _alloc(self) -> None:
        """The table's arrays at their full size, once, when the first item comes: zeroed
        pages cost memory only once an item is written to them."""
        n, d, k = self.capacity, self.layout.dynamic, self.layout.cat
        self.values: np.ndarray = np.zeros((n, self.keep), self.dtype)
        self.dynamic: np.ndarray = np.zeros((n, self.keep, d), self.dtype)
        self.cat = np.zeros((n, k))
        self.first = np.zeros(n, np.int64)
        self.last = np.zeros(n, np.int64)
        self.last_row = np.zeros(n, np.int64)
        self.acc = np.zeros((n, 6))

    def _slot(self, key: str) -> tuple[int, bool]:
        """The slot of item ``key`` (and whether it is new), evicting the least recently
        updated item where the table is full."""
        slot = self.slots.get(key)
        if slot is not None:
            self.slots.move_to_end(key)
            return slot, False
        if self._used < self.capacity:
            if not self._used:
                self._alloc()
            slot, self._used = self._used, self._used + 1
        else:
            gone, slot = self.slots.popitem(last=False)
            self._evict(gone)
        self.slots[key] = slot
        return slot, True

    def _evict(self, key: str) -> None:
        if self.reading.mode == "test":
            raise ConfigError(
                f"a test of long-format rows holds each item to its end: item {key!r} would "
                f"be evicted from a table of {self.capacity:,} items; raise series_table_mb"
            )
        self.evicted += 1
        if self.evicted == 1:
            log.warning(
                "the series table holds %d items: item %r is evicted and will start afresh "
                "if it comes back (raise series_table_mb to keep more)",
                self.capacity,
                key,
            )

    # -- reading rows --------------------------------------------------------------------------

    def add(self, rows: pa.Table, checker: RowChecker, skip: int, file_row: int) -> Iterator[Chunk]:
        """Fold ``rows`` (the next rows of the read, their columns as :func:`long_columns`
        names them) into the table; training windows they complete from position ``skip``
        on come out as chunks. ``file_row`` is the first row's 0-based index in its file,
        for messages."""
        piece = min(
            self.capacity // 2,
            _PIECE_POSITIONS // self.keep,
            self.block_bytes // (4 * self.layout.width),
        )
        piece = max(1, piece)
        if not rows.num_rows and self._rejected:
            empty = np.zeros((0, self.layout.width), np.float32)
            positions = np.zeros(0, np.int64)
            yield Chunk(
                dense_record_batch(empty, None), positions, self.rows, self._take_rejected()
            )
        for at in range(0, rows.num_rows, piece):
            part = rows.slice(at, piece)
            chunk = self._add(part, checker, skip, file_row + at)
            if chunk is not None:
                yield chunk

    def reject(self, skip: int) -> None:
        """Count the next row as bad, the reader having reported it (from ``skip`` on)."""
        if self.rows >= skip:
            (self._bad if self.reading.mode == "test" else self._rejected).append(self.rows)
        self.rows += 1

    def _take_rejected(self) -> np.ndarray:
        out, self._rejected = np.asarray(self._rejected, np.int64), []
        return out

    def _add(self, rows: pa.Table, checker: RowChecker, skip: int, file_row: int) -> Chunk | None:
        n, first = rows.num_rows, self.rows
        self.rows += n
        checked = check_rows(rows, self.rules, checker.file)
        bad, items = checked.bad, checked.items
        mine = self._mine(items)
        bad.ok &= mine  # another worker's items: neither folded nor reported here
        # Slots, taken in order of each item's last row in the block (its recency).
        ok = np.flatnonzero(bad.ok)
        codes = items.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        names = items.dictionary.to_pylist()
        slot_of = np.full(len(names), -1, dtype=np.int64)
        fresh = np.zeros(len(names), dtype=bool)
        backwards = codes[ok][::-1]
        present, last_seen = np.unique(backwards, return_index=True)
        for code in present[np.argsort(-last_seen, kind="stable")].tolist():
            slot_of[code], fresh[code] = self._slot(str(names[code]))
        slots = np.where(bad.ok, slot_of[codes], -1)
        windows = self._assemble(slots, fresh[codes], checked, first, first + n > skip)
        # The piece's windows in its items' order (each item's steps together, as records
        # give them: rows ordered by time would put one step of many items in each batch),
        # at the piece's positions from its first on; its bad rows at its first position.
        at = first + np.arange(len(windows), dtype=np.int64)
        windows, at = windows[at >= skip], at[at >= skip]
        flagged = np.zeros(n, dtype=bool)
        flagged[list(bad.why)] = True
        report = first >= skip
        for i in np.flatnonzero(flagged & mine).tolist() if report else []:
            field, message = bad.why[i]
            checker.report(
                DataError(
                    message, source=checker.file, row=file_row + i + 1, field=field, row_label="row"
                )
            )
        bad_at = np.full(int((flagged & mine).sum()) if report else 0, first, np.int64)
        if self.reading.mode == "test":
            self._bad.extend(bad_at.tolist())
            return None
        rejected = np.r_[self._take_rejected(), bad_at].astype(np.int64)
        if not len(at) and not len(rejected) and first + n <= skip:
            return None
        return Chunk(dense_record_batch(windows, None), at, first + n, rejected)

    def _mine(self, items: pa.DictionaryArray) -> np.ndarray:
        """Which rows are of this reader's items: all, or (a shard ``(k, n)`` of a read split
        among workers) those whose item's CRC-32 is ``k`` modulo ``n``."""
        codes = items.indices.to_numpy(zero_copy_only=False)
        if self.shard is None:
            return np.ones(len(codes), dtype=bool)
        k, n = self.shard
        names = items.dictionary.to_pylist()
        owned = np.array([zlib.crc32(str(x).encode()) % n == k for x in names], dtype=bool)
        return owned[codes] if len(names) else np.zeros(len(codes), dtype=bool)

    # -- assembling windows --------------------------------------------------------------------

    def _assemble(
        self,
        slots: np.ndarray,
        fresh: np.ndarray,
        rows: CheckedRows,
        first: int,
        build: bool,
    ) -> np.ndarray:
        """Update the table with the good rows; the training windows they complete (rows
        of the layout, item by item; none unless ``build``)."""
        layout, step, keep = self.layout, self.freq.n, self.keep
        bad, period = rows.bad, rows.period
        empty = np.zeros((0, layout.width), np.float32)
        # New items start before their first row: an empty past, the first row at step 0.
        ok = np.flatnonzero(bad.ok)
        order = ok[np.argsort(slots[ok], kind="stable")]
        if not len(order):
            return empty
        s = slots[order]
        head = np.r_[True, s[1:] != s[:-1]]
        new_head = head & fresh[order]
        self.first[s[new_head]] = period[order[new_head]]
        self.last[s[new_head]] = period[order[new_head]] - step
        self.values[s[new_head]] = np.nan
        self.dynamic[s[new_head]] = 0.0
        self.acc[s[new_head]] = 0.0
        # An item's rows must move forward in time on its grid. The step before a row is
        # the latest of its item's before it (a row out of order or repeated is bad and
        # moves nothing): a running maximum within each item's rows, made one running
        # maximum over the block by lifting each item's periods above the previous item's.
        p = period[order]
        off_grid = (p - self.first[s]) % step != 0
        group = np.cumsum(head) - 1
        lo = min(int(p.min()), int(self.last[s].min()))
        span = max(int(p.max()), int(self.last[s].max())) - lo + 1
        lifted = np.where(off_grid, -1, p - lo + group * span)
        seed = self.last[s] - lo + group * span
        before = np.maximum.accumulate(np.where(head, seed, np.r_[-1, lifted[:-1]]))
        previous = before - group * span + lo
        stale = (p <= previous) & ~off_grid
        if stale.any() or off_grid.any():
            for mask, message in (
                (stale, "not after the item's previous row: an item's rows come in time order"),
                (off_grid, f"not on the {self.reading.freq} grid of the item's first row"),
            ):
                marked = np.zeros(len(slots), dtype=bool)
                marked[order[mask]] = True
                bad.mark(marked, TIMESTAMP, message)
            good = ~(stale | off_grid)
            order, s, p, previous = order[good], s[good], p[good], previous[good]
            if not len(order):
                return empty
            head = np.r_[True, s[1:] != s[:-1]]
        gap = np.minimum((p - previous) // step, keep)
        starts = np.flatnonzero(head)
        sizes = np.diff(np.r_[starts, len(order)])
        spans = np.add.reduceat(gap, starts)  # steps each item moves on
        rows_out = []
        for groups in _parts(spans, keep):
            if len(groups) == len(starts):
                take = np.arange(len(order))
            else:
                take = np.repeat(
                    starts[groups] - np.cumsum(np.r_[0, sizes[groups][:-1]]), sizes[groups]
                ) + np.arange(sizes[groups].sum())
            rows_out.append(
                self._fold(order[take], s[take], p[take], gap[take], rows, first, build)
            )
        return rows_out[0] if len(rows_out) == 1 else np.concatenate(rows_out)

    def _fold(
        self,
        order: np.ndarray,
        s: np.ndarray,
        p: np.ndarray,
        gap: np.ndarray,
        rows: CheckedRows,
        first: int,
        build: bool,
    ) -> np.ndarray:
        """Fold good rows (``order``: their indices in the block, grouped by item, each
        item's in time order; ``s`` their slots, ``p`` their periods, ``gap`` the steps
        each moves its item on, at most ``keep``) into the table; the training windows they
        complete (none unless ``build``), item by item.

        Each item's steps are laid out in a row of a matrix: its kept steps, then its new
        ones (a gap's steps missing), so that a window and an item's new kept steps are
        each one contiguous slice of a row."""
        layout, keep, d = self.layout, self.keep, self.layout.dynamic
        cat = rows.cat
        head = np.r_[True, s[1:] != s[:-1]]
        group = np.cumsum(head) - 1
        starts = np.flatnonzero(head)
        sizes = np.diff(np.r_[starts, len(order)])
        g_slots = s[starts]
        n_groups = len(starts)
        cum = np.cumsum(gap)
        within = cum - np.repeat(cum[starts] - gap[starts], sizes)
        spans = within[starts + sizes - 1]  # steps each item moves on
        col = keep - 1 + within  # each row's column in its item's row of the matrix
        width = keep + int(spans.max())
        seg: np.ndarray = np.full((n_groups, width), np.nan, self.dtype)
        seg[:, :keep] = self.values[g_slots]
        y = rows.target[order]
        seg[group, col] = y
        everyone = np.arange(n_groups)
        kept = sliding_window_view(seg, keep, axis=1)
        if d:
            dseg: np.ndarray = np.zeros((n_groups, width, d), self.dtype)
            dseg[:, :keep] = self.dynamic[g_slots]
            dseg[group, col] = rows.dynamic[order]
        # Accumulators, running within each item: what a row's window carries as its scale.
        known = ~np.isnan(y)
        abs_sum = _running(np.where(known, np.abs(y), 0.0), starts, sizes)
        abs_n = _running(known.astype(np.float64), starts, sizes)
        acc = self.acc[g_slots]
        scale_sum = acc[group, _ABS] + abs_sum
        scale_n = acc[group, _ABS_N] + abs_n
        ends = starts + sizes - 1
        acc[:, _ABS] += abs_sum[ends]
        acc[:, _ABS_N] += abs_n[ends]
        if self.reading.mode == "test":
            for lag, column in ((self.season, _SEASON), (1, _LAG1)):
                diff = np.abs(y - seg[group, col - lag])
                has = ~np.isnan(diff)
                acc[:, column] += np.bincount(group, np.where(has, diff, 0.0), n_groups)
                acc[:, column + 1] += np.bincount(group, has, n_groups)
        self.acc[g_slots] = acc
        self.values[g_slots] = kept[everyone, spans]
        if d:
            new = sliding_window_view(dseg, keep, axis=1)[everyone, spans]  # (items, d, keep)
            self.dynamic[g_slots] = new.transpose(0, 2, 1)
        self.last[g_slots] = p[ends]
        self.last_row[g_slots] = first + order[ends]
        if layout.cat:
            self.cat[g_slots] = cat[order[ends]]
        if self.reading.mode != "train" or not build:
            return np.zeros((0, layout.width), np.float32)
        # Training windows: a row whose step ends a prediction range with a step before it.
        k = (p - self.first[s]) // self.freq.n
        begins = k - layout.prediction + 1
        emit = (begins >= 1) & ((begins - 1) % self.reading.stride == 0)
        if not emit.any():
            return np.zeros((0, layout.width), np.float32)
        sel = np.flatnonzero(emit)
        g, c = group[sel], col[sel]
        values = sliding_window_view(seg, layout.length, axis=1)[g, c - layout.length + 1]
        dynamic = None
        if d:
            dynamic = sliding_window_view(dseg, layout.steps, axis=1)[g, c - layout.steps + 1]
            dynamic = dynamic.transpose(0, 2, 1)
        out = self._windows(values, dynamic, k[sel], p[sel], cat[order[sel]])
        out[:, -1] = np.where(scale_n[sel] > 0, scale_sum[sel] / np.maximum(scale_n[sel], 1), 0)
        return out

    def _windows(
        self,
        values: np.ndarray,
        dynamic: np.ndarray | None,
        k: np.ndarray,
        period: np.ndarray,
        cat: np.ndarray,
    ) -> np.ndarray:
        """Packed rows of windows: their targets ``(n, length)`` (NaN missing), covariates
        ``(n, steps, dynamic)``, the step ``k`` of their item and the period ``period`` of
        their last step, and their items' categories."""
        layout, n = self.layout, len(values)
        steps = layout.steps
        target = values.astype(np.float32)
        known = ~np.isnan(target)
        observed = known.astype(np.float32)
        np.copyto(target, 0.0, where=~known)
        back = np.arange(steps - 1, -1, -1)
        periods = period[:, None] - back * self.freq.n
        time = np.empty((n, steps, layout.time_features), np.float32)
        time[:, :, :-1] = calendar_features(self.freq, periods.ravel()).reshape(n, steps, -1)
        time[:, :, -1] = age_feature((k[:, None] - back).ravel()).reshape(n, steps)
        return layout.pack(target, observed, time, dynamic, cat)

    # -- the end of a test ---------------------------------------------------------------------

    def finish(self, checker: RowChecker) -> Iterator[Chunk]:
        """A test's windows, one per item, each at the position of its last row; nothing
        for training (its windows came out as rows completed them)."""
        if self.reading.mode != "test":
            if self.evicted:
                log.warning(
                    "the series table (%d items, series_table_mb) evicted %d items in this read: "
                    "an item that came back after it was evicted started afresh",
                    self.capacity,
                    self.evicted,
                )
            return
        layout, keep = self.layout, self.keep
        items = list(self.slots.items())
        if not items:
            if self._bad:
                yield Chunk(
                    dense_record_batch(np.zeros((0, layout.width), np.float32), None),
                    np.zeros(0, np.int64),
                    self.rows,
                    np.asarray(self._bad, np.int64),
                )
            return
        slots = np.array([slot for _, slot in items], dtype=np.int64)
        steps = (self.last[slots] - self.first[slots]) // self.freq.n + 1
        past = steps - layout.prediction
        for i in np.flatnonzero(past < 1).tolist():
            checker.report(
                DataError(
                    f"item {items[i][0]!r} has {int(steps[i])} steps; a test needs at least "
                    f"prediction_length + 1 ({layout.prediction + 1})",
                    source=checker.file,
                    field=TARGET,
                )
            )
        enough = past >= 1
        slots, past, steps = slots[enough], past[enough], steps[enough]
        order = np.argsort(self.last_row[slots], kind="stable")
        slots, past, steps = slots[order], past[order], steps[order]
        values = self.values[slots]
        # The seasonal error of each item's past (GluonTS's: the season's lag where the past
        # is longer than a season, else 1): its differences so far, less those whose later
        # step is held out (they and their partners lie within the kept steps).
        later = np.arange(keep - layout.prediction, keep)
        errors = []
        for lag, col in ((self.season, _SEASON), (1, _LAG1)):
            diff = np.abs(values[:, later] - values[:, later - lag])
            has = ~np.isnan(diff)
            total = self.acc[slots, col] - np.where(has, diff, 0.0).sum(axis=1)
            count = self.acc[slots, col + 1] - has.sum(axis=1)
            errors.append(np.where(count > 0, total / np.maximum(count, 1), 0.0))
        extra = np.where(self.season < past, errors[0], errors[1])
        window = values[:, keep - layout.length :]
        dynamic = self.dynamic[slots, keep - layout.steps :] if layout.dynamic else None
        rows = self._windows(window, dynamic, steps - 1, self.last[slots], self.cat[slots])
        rows[:, -1] = extra
        yield Chunk(
            dense_record_batch(rows, None),
            self.last_row[slots].astype(np.int64),
            self.rows,
            np.asarray(self._bad, np.int64),
        )


def _parts(spans: np.ndarray, keep: int) -> list[np.ndarray]:
    """Items of a block in parts whose matrices (items x the most steps one spans) stay
    within twice ``_BLOCK_POSITIONS``: one part, unless a few items span far more than the
    rest. An item's rows never part."""
    budget = 2 * _BLOCK_POSITIONS
    if len(spans) * (keep + int(spans.max())) <= budget:
        return [np.arange(len(spans))]
    by_span = np.argsort(spans, kind="stable")
    parts, begin = [], 0
    for end in range(1, len(by_span) + 1):
        last = end == len(by_span)
        if last or (end + 1 - begin) * (keep + int(spans[by_span[end]])) > budget:
            parts.append(np.sort(by_span[begin:end]))
            begin = end
    return parts


def _running(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The running sum of ``values`` within each group (groups start at ``starts``)."""
    cum = np.cumsum(values)
    offset = np.repeat(cum[starts] - values[starts], sizes)
    out: np.ndarray = cum - offset
    return out
