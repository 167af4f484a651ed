"""What a series record must be, which windows it gives, and building them as packed rows:
the part of reading series (:mod:`streamfit.data.series`) that no file format changes.

A window whose prediction starts at step ``s`` of a series of ``L`` targets holds steps
``s - context - history .. s + prediction - 1``; a step before 0 or from ``L`` on has target 0
and observed 0. Each series gives its windows most recent first:

>>> window_starts("train", 10, 3, stride=2).tolist(), window_count("train", 10, 3, 2)
([7, 5, 3, 1], 4)
>>> window_starts("test", 10, 3).tolist(), window_starts("forecast", 10, 3).tolist()
([7], [10])
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from streamfit.core.calendar import (
    age_feature,
    calendar_features,
    num_time_features,
    parse_frequency,
    parse_start,
    period_index,
)
from streamfit.core.windows import SeriesReading, WindowsMode
from streamfit.data.chunk import Chunk, dense_record_batch
from streamfit.data.text import ReadContext
from streamfit.errors import ConfigError, DataError

__all__ = [
    "FLOAT32_MAX",
    "MAX_CATEGORY",
    "BadSeries",
    "Series",
    "SeriesRules",
    "WindowBuilder",
    "beyond_float32",
    "window_count",
    "window_starts",
]

#: The largest category a packed (float32) window holds exactly, where no cardinality bounds it.
MAX_CATEGORY = 2**24


#: Windows are float32: a value beyond it would be infinite there.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def beyond_float32(value: float) -> str:
    """Why ``value`` cannot be a float32 window value."""
    if math.isinf(value):
        return f"non-finite value ({value})"
    return f"{value:g} is beyond float32's range (about 3.4e38)"


class BadSeries(Exception):
    """A series record that cannot be used: which field, and what is wrong with it."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Series:
    """A checked series record."""

    start: int  # the period of its start (:func:`streamfit.core.calendar.period_index`)
    target: np.ndarray  # float64, NaN where missing
    cat: np.ndarray  # float64 (layout.cat,): whole numbers within their cardinality
    dynamic: np.ndarray  # float64 (layout.dynamic, at least the steps its windows reach)


def window_starts(mode: WindowsMode, length: int, prediction: int, stride: int = 1) -> np.ndarray:
    """The first prediction step of each window a series of ``length`` targets gives."""
    if mode == "forecast":
        return np.arange(length, length + (length >= 1), dtype=np.int64)
    last = length - prediction
    if mode == "test":
        return np.arange(last, last + (last >= 1), dtype=np.int64)
    return np.arange(last, 0, -stride, dtype=np.int64)


def window_count(mode: WindowsMode, length: int, prediction: int, stride: int = 1) -> int:
    """How many windows :func:`window_starts` gives, without listing them."""
    if mode == "forecast":
        return int(length >= 1)
    last = length - prediction
    if last < 1:
        return 0
    return 1 if mode == "test" else (last - 1) // stride + 1


class SeriesRules:
    """The checks a record passes to become a :class:`Series` under a :class:`SeriesReading`;
    each failure is a :class:`BadSeries` naming the field."""

    def __init__(self, reading: SeriesReading) -> None:
        if reading.stride < 1:
            raise ConfigError(f"series windows need a stride of at least 1, got {reading.stride}")
        self.reading = reading
        self.freq = parse_frequency(reading.freq)
        layout = self.layout = reading.layout
        if layout.time_features != num_time_features(self.freq):
            raise ConfigError(
                f"time_freq {reading.freq} has {num_time_features(self.freq)} time features, "
                f"the window layout {layout.time_features}"
            )
        self.bounds = tuple(int(c) for c in reading.cardinality)
        if self.bounds and len(self.bounds) != layout.cat:
            raise ConfigError(
                f"{len(self.bounds)} cardinalities for {layout.cat} categorical features"
            )
        self.min_length = 1 if reading.mode == "forecast" else layout.prediction + 1
        self._starts: dict[str, int] = {}

    def start_period(self, text: object) -> int:
        """The period of a ``start`` string (see :func:`parse_start`)."""
        if text is None:
            raise BadSeries("start", "missing")
        if not isinstance(text, str):
            raise BadSeries("start", f"not a string but {type(text).__name__}")
        period = self._starts.get(text)
        if period is None:
            try:
                period = period_index(self.freq, parse_start(text))
            except ValueError as exc:
                raise BadSeries("start", str(exc)) from None
            if len(self._starts) >= 100_000:  # bounded: a data set of many distinct starts
                self._starts.clear()
            self._starts[text] = period
        return period

    def series(
        self, start: int, target: np.ndarray, cat: np.ndarray | None, dynamic: list[np.ndarray]
    ) -> Series:
        """``target`` (float64, NaN missing), ``cat`` (None: absent) and ``dynamic`` checked.
        ``cat`` and ``dynamic`` are ignored where the layout has none."""
        length = len(target)
        if length < self.min_length:
            raise BadSeries("target", self._too_short(length))
        if not np.abs(target).max(initial=0.0) <= FLOAT32_MAX:  # NaN too: one pass if none
            beyond = np.abs(target) > FLOAT32_MAX
            if beyond.any():
                i = int(np.flatnonzero(beyond)[0])
                raise BadSeries(f"target[{i}]", beyond_float32(target[i]))
            n_missing = int(np.isnan(target).sum())
            if 2 * n_missing > length:
                raise BadSeries(
                    "target", f"{n_missing} of its {length} values are missing, more than are known"
                )
        return Series(start, target, self._cat(cat), self._dynamic(dynamic, length))

    def _too_short(self, length: int) -> str:
        mode, need = self.reading.mode, self.min_length
        if mode == "forecast":
            return "target is empty; a forecast needs at least one value"
        what = "training" if mode == "train" else "a test"
        return f"target has {length} values; {what} needs at least prediction_length + 1 ({need})"

    def _cat(self, cat: np.ndarray | None) -> np.ndarray:
        k = self.layout.cat
        if not k:
            return np.zeros(0)
        if cat is None:
            raise BadSeries("cat", f"missing: the model has {k} categorical features")
        if len(cat) != k:
            raise BadSeries("cat", f"{len(cat)} values where the model has {k}")
        for i, value in enumerate(cat.tolist()):
            bound = self.bounds[i] if self.bounds else MAX_CATEGORY
            if math.isnan(value):
                raise BadSeries(f"cat[{i}]", "missing")
            if not float(value).is_integer():
                raise BadSeries(f"cat[{i}]", f"{value} is not an integer")
            if value < 0:
                raise BadSeries(f"cat[{i}]", f"{int(value)} is negative")
            if value >= bound:
                why = f"its cardinality {bound}" if self.bounds else "2**24"
                raise BadSeries(f"cat[{i}]", f"{int(value)} is beyond {why}")
        return cat

    def _dynamic(self, dynamic: list[np.ndarray], length: int) -> np.ndarray:
        d = self.layout.dynamic
        if not d:
            return np.zeros((0, 0))
        if len(dynamic) != d:
            raise BadSeries("dynamic_feat", f"{len(dynamic)} features where the model has {d}")
        forecast = self.reading.mode == "forecast"
        need = length + self.layout.prediction if forecast else length
        for j, row in enumerate(dynamic):
            if forecast and len(row) < need:
                raise BadSeries(
                    f"dynamic_feat[{j}]",
                    f"{len(row)} values; a forecast needs the target's {length} and the "
                    f"prediction's {self.layout.prediction} ({need})",
                )
            if not forecast and len(row) != need:
                raise BadSeries(
                    f"dynamic_feat[{j}]", f"{len(row)} values where the target has {length}"
                )
            bad = ~(np.abs(row[:need]) <= FLOAT32_MAX)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                why = "missing" if math.isnan(row[i]) else beyond_float32(row[i])
                raise BadSeries(f"dynamic_feat[{j}][{i}]", why)
        return np.stack([row[:need] for row in dynamic])


class WindowBuilder:
    """Packed window rows of the series of one file, in chunks of at most about
    ``ctx.block_bytes``; a position is a window, counted across the source, and the first
    ``ctx.skip`` windows of the file are counted but not built."""

    def __init__(self, ctx: ReadContext, row_label: str) -> None:
        assert ctx.series is not None
        if ctx.stop is not None:
            raise ConfigError(f"{ctx.checker.file}: series cannot be read as a range of rows")
        self.ctx = ctx
        self.rules = SeriesRules(ctx.series)
        self.layout = layout = ctx.series.layout
        self.row_label = row_label
        checker = ctx.checker
        if checker.n_features not in (None, layout.width):
            raise ConfigError(
                f"{checker.file}: windows of this layout are {layout.width} wide, "
                f"not {checker.n_features}"
            )
        checker.enter(checker.file, ctx.offset, row_label)
        self.seen = 0  # windows of this file so far
        self.max_rows = max(1, ctx.block_bytes // (4 * layout.width))
        self._pending: list[tuple[Series, np.ndarray]] = []  # series, its windows' starts
        self._n_pending = 0
        self._first = 0  # the position of the first window pending
        self._bad: list[int] = []

    def add(self, series: Series) -> Iterator[Chunk]:
        """Count the series' windows; those from ``ctx.skip`` on are built (a chunk comes
        out whenever ``max_rows`` are waiting)."""
        reading = self.rules.reading
        length = len(series.target)
        count = window_count(reading.mode, length, self.layout.prediction, reading.stride)
        first, self.seen = self.seen, self.seen + count
        if self.seen <= self.ctx.skip:
            return
        starts = window_starts(reading.mode, length, self.layout.prediction, reading.stride)
        at = max(0, self.ctx.skip - first)
        while at < count:
            take = min(count - at, self.max_rows - self._n_pending)
            if not self._pending:
                self._first = first + at
            self._pending.append((series, starts[at : at + take]))
            self._n_pending += take
            at += take
            if self._n_pending >= self.max_rows:
                chunk = self.flush()
                assert chunk is not None
                yield chunk

    def reject(self, row: int, bad: BadSeries) -> None:
        """A bad record at ``row`` (1-based in the file): raised or counted, at the window
        position where it was met. One before the resume point was counted before it."""
        if self.seen < self.ctx.skip:
            return
        checker = self.ctx.checker
        err = DataError(
            bad.message, source=checker.file, row=row, field=bad.field, row_label=self.row_label
        )
        checker.report(err)
        self._bad.append(self.ctx.offset + self.seen)

    def flush(self) -> Chunk | None:
        """The windows and bad records waiting, as a chunk (None if there are none)."""
        if not self._pending and not self._bad:
            return None
        pending, n, self._pending, self._n_pending = self._pending, self._n_pending, [], 0
        bad, self._bad = self._bad, []
        rows = self._build(pending) if pending else np.zeros((0, self.layout.width), np.float32)
        # Every window from the resume point on is built, so a chunk's positions run on.
        first = self.ctx.offset + self._first
        positions = np.arange(first, first + n, dtype=np.int64)
        end = self.ctx.offset + self.seen
        return Chunk(dense_record_batch(rows, None), positions, end, np.asarray(bad, np.int64))

    def _extras(
        self, pending: list[tuple[Series, np.ndarray]], flat: np.ndarray, bases: np.ndarray
    ) -> np.ndarray:
        """The number each series' windows carry (:class:`WindowLayout`): training, the mean
        absolute observed value; a test, the seasonal error of the steps before the
        held-out ones (GluonTS's ``calculate_seasonal_error``, missing values left out, 0
        where no pair is known); a forecast, 0. ``flat`` holds the targets from ``bases``
        on, between NaN pads."""
        mode = self.rules.reading.mode
        if mode == "forecast":
            return np.zeros(len(pending))
        if mode == "train":
            known = ~np.isnan(flat)
            sums = np.add.reduceat(np.where(known, np.abs(flat), 0.0), bases)
            extra: np.ndarray = sums / np.add.reduceat(known, bases)
            return extra
        # Each test series' pairs (step, step + lag) of its past, the lag 1 where the season
        # is not shorter than the past; pairs with a missing value left out.
        season = self.rules.reading.seasonality
        past = np.array([len(item[0].target) for item in pending]) - self.layout.prediction
        lags = np.where(season < past, season, 1)
        pairs = past - lags
        owner = np.repeat(np.arange(len(pending)), pairs)
        first = np.repeat(bases - (np.cumsum(pairs) - pairs), pairs) + np.arange(pairs.sum())
        diffs = np.abs(flat[first + np.repeat(lags, pairs)] - flat[first])
        known = ~np.isnan(diffs)
        sums = np.bincount(owner, np.where(known, diffs, 0.0), minlength=len(pending))
        counts = np.bincount(owner, known, minlength=len(pending))
        out: np.ndarray = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        return out

    def _build(self, pending: list[tuple[Series, np.ndarray]]) -> np.ndarray:
        layout, freq = self.layout, self.rules.freq
        h, c, p = layout.history, layout.context, layout.prediction
        counts = np.array([len(item[1]) for item in pending])
        s = np.concatenate([item[1] for item in pending])
        # Targets: every series between NaN pads (missing, as outside the series), so that
        # a window is one slice of one flat array whatever part of it lies outside.
        left, right = np.full(h + c, np.nan), np.full(p, np.nan)
        sizes = np.array([h + c + len(item[0].target) + p for item in pending])
        bases = np.cumsum(sizes) - sizes
        flat = np.concatenate([part for item in pending for part in (left, item[0].target, right)])
        # Gathered in float32, the rows' type, so that packing copies once.
        target = flat.astype(np.float32)[
            (np.repeat(bases, counts) + s)[:, None] + np.arange(layout.length)
        ]
        known = ~np.isnan(target)
        observed = known.astype(np.float32)
        np.copyto(target, 0.0, where=~known)
        # Time features: of each series' steps its windows reach, then gathered per window.
        lo = np.array([item[1].min() for item in pending]) - c
        spans = np.array([item[1].max() for item in pending]) + p - lo
        span_bases = np.cumsum(spans) - spans
        steps = np.arange(spans.sum()) - np.repeat(span_bases - lo, spans)
        periods = np.repeat([item[0].start for item in pending], spans) + steps * freq.n
        table = np.empty((len(steps), layout.time_features), np.float32)
        table[:, :-1] = calendar_features(freq, periods)
        table[:, -1] = age_feature(steps)
        first = np.repeat(span_bases - lo, counts) + s - c
        time = table[first[:, None] + np.arange(layout.steps)]
        dynamic = None
        if layout.dynamic:
            pad = np.zeros((c, layout.dynamic))
            parts = [part for item in pending for part in (pad, item[0].dynamic.T)]
            dyn_sizes = np.array([c + item[0].dynamic.shape[1] for item in pending])
            dyn_bases = np.cumsum(dyn_sizes) - dyn_sizes
            dyn_flat = np.concatenate(parts).astype(np.float32)
            dynamic = dyn_flat[
                (np.repeat(dyn_bases, counts) + s)[:, None] + np.arange(layout.steps)
            ]
        cat = np.repeat(np.stack([item[0].cat for item in pending]), counts, axis=0)
        extra = np.repeat(self._extras(pending, flat, bases + h + c), counts)
        return layout.pack(target, observed, time, dynamic, cat, extra)
