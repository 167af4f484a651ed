"""Series records read into windows (:mod:`streamfit.core.windows`): what a forecaster reads
where a source's ``SourceOptions.series`` is set.

SageMaker's DeepAR records, one JSON object a line (gzip as any file)::

    {"start": "2024-01-01 00:00:00", "target": [4.0, "NaN", 5.5], "cat": [2],
     "dynamic_feat": [[0.1, 0.2, 0.3]]}

or Parquet with those columns (``start`` a string or a timestamp). A missing target value is
``"NaN"``, ``NaN`` or ``null``. Each record gives the windows
:func:`~streamfit.data.series_windows.window_starts` lists, most recent first; a position is
a window, counted across the source's files, so that a resume skips exactly the windows
trained on. A bad record (a ``DataError`` naming the file, the line or record, and the field)
gives none; it is counted where skipped, at the position of the next window.

>>> import io, json, torch
>>> from streamfit.data.chunk import dense_arrays
>>> from streamfit.core.windows import SeriesReading, WindowLayout
>>> from streamfit.data.checks import RowChecker
>>> from streamfit.data.text import ReadContext
>>> layout = WindowLayout(history=1, context=2, prediction=1, time_features=4)
>>> record = {"start": "2024-01-01", "target": [1, 2, None, 4]}
>>> stream = io.BytesIO(json.dumps(record).encode() + b"\\n")
>>> ctx = ReadContext(RowChecker(labelled=False), 0, series=SeriesReading("D", layout))
>>> [chunk] = list(read_series_jsonl(stream, ctx))
>>> chunk.positions.tolist(), chunk.end
([0, 1, 2], 3)
>>> layout.unpack(torch.tensor(dense_arrays(chunk.batch))).target.tolist()
[[1.0, 2.0, 0.0, 4.0], [0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 1.0, 2.0]]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from typing import Any, BinaryIO

import numpy as np

from streamfit.data.chunk import Chunk
from streamfit.data.series_parquet import read_series_parquet
from streamfit.data.series_rows import read_long_csv
from streamfit.data.series_windows import BadSeries, Series, SeriesRules, WindowBuilder
from streamfit.data.text import ReadContext, line_blocks

__all__ = ["SERIES_READERS", "read_series_jsonl", "read_series_parquet"]

_NUMBERS = frozenset({int, float})


def read_series_jsonl(stream: BinaryIO, ctx: ReadContext) -> Generator[Chunk, None, int]:
    """Windows of the series of a JSON Lines stream; returns the number of windows."""
    builder = WindowBuilder(ctx, "line")
    rules = builder.rules
    for block, first, n in line_blocks(stream, 0, ctx.block_bytes):
        for i, raw in enumerate(block.split(b"\n", n)[:n]):
            if raw.isspace() or not raw:
                continue
            try:
                series = _record(raw, rules)
            except BadSeries as bad:
                builder.reject(first + i + 1, bad)
                continue
            yield from builder.add(series)
        chunk = builder.flush()  # what a pipe delivered is trained on as it arrives
        if chunk is not None:
            yield chunk
    return builder.seen


def _record(raw: bytes, rules: SeriesRules) -> Series:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadSeries(None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise BadSeries(None, f"not UTF-8 (byte {exc.start + 1})") from None
    except RecursionError:
        raise BadSeries(None, "nested too deep to be a series") from None
    if not isinstance(obj, dict):
        raise BadSeries(None, f"not a JSON object but {_kind(obj)}")
    start = rules.start_period(obj.get("start"))
    target = _numbers(obj.get("target"), "target")
    layout = rules.layout
    cat = None
    if layout.cat and obj.get("cat") is not None:
        cat = _numbers(obj["cat"], "cat")
    dynamic: list[np.ndarray] = []
    if layout.dynamic:
        rows = obj.get("dynamic_feat")
        if rows is None:
            raise BadSeries("dynamic_feat", f"missing: the model has {layout.dynamic} features")
        if not isinstance(rows, list):
            raise BadSeries("dynamic_feat", f"not a list but {_kind(rows)}")
        dynamic = [_numbers(row, f"dynamic_feat[{j}]") for j, row in enumerate(rows)]
    return rules.series(start, target, cat, dynamic)


def _numbers(values: Any, field: str) -> np.ndarray:
    """A JSON list of numbers as float64, NaN where one is ``null`` or ``"NaN"``."""
    if values is None:
        raise BadSeries(field, "missing")
    if not isinstance(values, list):
        raise BadSeries(field, f"not a list but {_kind(values)}")
    if set(map(type, values)) <= _NUMBERS:  # the common case, checked in one pass
        try:
            return np.array(values, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: the loop reports it
            pass
    out = np.empty(len(values))
    for i, value in enumerate(values):
        kind = type(value)
        if kind is float or kind is int:
            try:
                out[i] = value
            except OverflowError:
                raise BadSeries(f"{field}[{i}]", "a number beyond float64") from None
        elif value is None or (kind is str and value.strip().lower() == "nan"):
            out[i] = np.nan
        else:
            raise BadSeries(f"{field}[{i}]", f"{_short(value)} is not a number")
    return out


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), "a number")


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


#: The series reader of each format that has one.
SERIES_READERS: dict[str, Callable[[BinaryIO, ReadContext], Generator[Chunk, None, int]]] = {
    "jsonl": read_series_jsonl,
    "parquet": read_series_parquet,
    "csv": read_long_csv,
}
