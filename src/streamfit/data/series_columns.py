"""The columns of long-format series rows (:mod:`streamfit.data.series_long`), checked and
converted: ``item_id`` as text, ``timestamp`` as a period of ``time_freq``'s unit, ``target``
(missing allowed), ``cat_j`` (whole numbers within their cardinality) and ``dynamic_feat_j``
as float64. A bad value makes its row bad, with the field and the first reason.

>>> import pyarrow as pa
>>> from streamfit.core.windows import SeriesReading, WindowLayout
>>> from streamfit.data.series_windows import SeriesRules
>>> rules = SeriesRules(SeriesReading("D", WindowLayout(1, 2, 1, 4)))
>>> rows = pa.table({"item_id": ["a", ""], "timestamp": ["1970-01-03", "2024-13-01"],
...                  "target": ["1.5", "x"]})
>>> got = check_rows(rows, rules, "rows.csv")
>>> got.bad.ok.tolist(), got.period[0], got.target[0], got.bad.why[1]
([True, False], np.int64(2), np.float64(1.5), ('item_id', 'missing'))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamfit.core.calendar import parse_start, period_indices
from streamfit.core.windows import SeriesReading
from streamfit.data.series_windows import (
    FLOAT32_MAX,
    MAX_CATEGORY,
    SeriesRules,
    beyond_float32,
)
from streamfit.errors import DataError

__all__ = [
    "ITEM",
    "TARGET",
    "TIMESTAMP",
    "BadRows",
    "CheckedRows",
    "check_rows",
    "is_long",
    "long_columns",
]

ITEM, TIMESTAMP, TARGET = "item_id", "timestamp", "target"


def long_columns(reading: SeriesReading) -> list[str]:
    """The columns a long-format row of ``reading`` needs, in order.

    >>> from streamfit.core.windows import WindowLayout
    >>> long_columns(SeriesReading("D", WindowLayout(1, 2, 1, 4, cat=1, dynamic=2)))
    ['item_id', 'timestamp', 'target', 'cat_0', 'dynamic_feat_0', 'dynamic_feat_1']
    """
    layout = reading.layout
    cats = [f"cat_{j}" for j in range(layout.cat)]
    return [ITEM, TIMESTAMP, TARGET, *cats, *(f"dynamic_feat_{j}" for j in range(layout.dynamic))]


def is_long(names: list[str]) -> bool:
    """Whether columns ``names`` are long-format rows rather than series records."""
    return ITEM in names and TIMESTAMP in names and "start" not in names


class BadRows:
    """Bad rows of a block found while converting its columns: the first reason of each."""

    def __init__(self, n: int) -> None:
        self.ok = np.ones(n, dtype=bool)
        self.why: dict[int, tuple[str, str]] = {}

    def mark(self, mask: np.ndarray, field: str, message: str | list[str]) -> None:
        """Rows ``mask`` (a list of messages: one per row of ``mask`` still good) are bad."""
        for k, i in enumerate(np.flatnonzero(mask & self.ok).tolist()):
            self.why[i] = (field, message if isinstance(message, str) else message[k])
        self.ok &= ~mask


@dataclass(frozen=True)
class CheckedRows:
    """A block's rows as arrays; a bad row's values are meaningless."""

    bad: BadRows
    items: pa.DictionaryArray  # each row's item (the text of its id), encoded
    period: np.ndarray  # int64
    target: np.ndarray  # float64, NaN missing
    cat: np.ndarray  # float64 (n, cat)
    dynamic: np.ndarray  # float64 (n, dynamic)


def check_rows(rows: pa.Table, rules: SeriesRules, file: str) -> CheckedRows:
    """The columns :func:`long_columns` names of ``rows``, checked under ``rules``."""
    n, layout = rows.num_rows, rules.layout
    bad = BadRows(n)
    items = _texts(rows.column(ITEM), bad, file)
    period = _periods(rows.column(TIMESTAMP), rules, bad, file)
    target = _floats(rows.column(TARGET), TARGET, bad, file, missing_ok=True)
    cat = np.zeros((n, layout.cat))
    for j in range(layout.cat):
        cat[:, j] = _category(rows.column(f"cat_{j}"), j, rules, bad, file)
    dynamic = np.zeros((n, layout.dynamic))
    for j in range(layout.dynamic):
        field = f"dynamic_feat_{j}"
        dynamic[:, j] = _floats(rows.column(field), field, bad, file)
    return CheckedRows(bad, items, period, target, cat, dynamic)


def _periods(column: pa.ChunkedArray, rules: SeriesRules, bad: BadRows, file: str) -> np.ndarray:
    """The period (of ``time_freq``'s unit) of each row's timestamp."""
    out = np.zeros(len(column), dtype=np.int64)
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        missing = column.is_null().to_numpy(zero_copy_only=False)
        bad.mark(missing, TIMESTAMP, "missing")
        when = pc.cast(column, pa.timestamp("s")).to_numpy(zero_copy_only=False)
        out[~missing] = period_indices(rules.freq, np.asarray(when)[~missing])
        return out
    words = _texts(column, bad, file, TIMESTAMP)
    known = np.zeros(len(words.dictionary), dtype=np.int64)
    broken: dict[int, str] = {}
    for k, text in enumerate(words.dictionary.to_pylist()):  # each distinct one parsed once
        try:
            known[k] = period_indices(rules.freq, np.asarray(parse_start(text.strip())))
        except ValueError as exc:
            broken[k] = str(exc)
    codes = words.indices.to_numpy(zero_copy_only=False)
    if broken:
        wrong = np.isin(codes, list(broken)) & bad.ok
        bad.mark(wrong, TIMESTAMP, [broken[c] for c in codes[wrong].tolist()])
    out[:] = known[np.where(codes < 0, 0, codes)]
    return out


def _category(
    column: pa.ChunkedArray, j: int, rules: SeriesRules, bad: BadRows, file: str
) -> np.ndarray:
    field = f"cat_{j}"
    values = _floats(column, field, bad, file)
    bound = rules.bounds[j] if rules.bounds else MAX_CATEGORY
    why = f"its cardinality {bound}" if rules.bounds else "2**24"
    for mask, message in (
        (values != np.floor(values), "not an integer"),
        (values < 0, "negative"),
        (values >= bound, f"beyond {why}"),
    ):
        shown = [f"{v:g} is {message}" for v in values[mask & bad.ok].tolist()]
        bad.mark(mask & bad.ok, field, shown)
    return values


def _texts(
    column: pa.ChunkedArray, bad: BadRows, file: str, field: str = ITEM
) -> pa.DictionaryArray:
    """``column`` as text, dictionary-encoded (each distinct value parsed once); a null or
    empty value is a bad row."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        try:
            array = pc.cast(array, pa.string())
        except pa.ArrowException as exc:
            raise DataError(
                f"column {field!r} of type {array.type} cannot be read as text ({exc})",
                source=file,
            ) from None
    missing = pc.or_kleene(array.is_null(), pc.equal(pc.utf8_trim_whitespace(array), ""))
    bad.mark(missing.fill_null(True).to_numpy(zero_copy_only=False), field, "missing")
    encoded: pa.DictionaryArray = pc.dictionary_encode(pc.fill_null(array, ""))
    return encoded


def _floats(
    column: pa.ChunkedArray, field: str, bad: BadRows, file: str, *, missing_ok: bool = False
) -> np.ndarray:
    """``column`` as float64: a number, or (``missing_ok``) empty, null or NaN for missing;
    anything else, or a number beyond float32, is a bad row."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        text = pc.utf8_trim_whitespace(array)
        empty = pc.or_kleene(pc.equal(text, ""), pc.equal(pc.utf8_lower(text), "null"))
        text = pc.if_else(empty.fill_null(True), pa.scalar(None, pa.string()), text)
        try:
            array = pc.cast(text, pa.float64())
        except pa.ArrowInvalid:  # some text is no number: find which, one by one
            array = pa.array(_numbers(text.to_pylist(), field, bad))
    elif not (
        pa.types.is_integer(array.type)
        or pa.types.is_floating(array.type)
        or pa.types.is_boolean(array.type)
        or pa.types.is_decimal(array.type)
    ):
        raise DataError(f"column {field!r} holds {array.type}, not numbers", source=file)
    values: np.ndarray = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    values = values.astype(np.float64)  # nulls are NaN: missing
    missing = np.isnan(values)
    if not missing_ok:
        bad.mark(missing, field, "missing")
    beyond = ~missing & ~(np.abs(values) <= FLOAT32_MAX)
    if beyond.any():
        bad.mark(beyond, field, [beyond_float32(v) for v in values[beyond & bad.ok].tolist()])
    return values


def _numbers(words: list[str | None], field: str, bad: BadRows) -> np.ndarray:
    """``words`` as float64, NaN for None and for a word that is no number (its row bad)."""
    out = np.full(len(words), np.nan)
    wrong = np.zeros(len(words), dtype=bool)
    shown = []
    for i, word in enumerate(words):
        if word is None:
            continue
        try:
            out[i] = float(word)
        except ValueError:
            wrong[i] = True
            if bad.ok[i]:
                shown.append(f"{word[:40]!r} is not a number")
    bad.mark(wrong, field, shown)
    return out
