"""How a forecaster's channels are read (:func:`series_options`), and what a channel of series
says about its shape before it is read: the number of categories (``cat``) and of covariates
(``dynamic_feat``) of its first series (or the ``cat_<j>`` and ``dynamic_feat_<j>`` columns
of long-format rows), so that a forecaster's "auto" hyperparameters are made
concrete before its state (whose layout they fix) exists.

>>> import json, tempfile, os
>>> from streamfit.data.source import open_source
>>> path = os.path.join(tempfile.mkdtemp(), "s.jsonl")
>>> with open(path, "w") as f:
...     _ = f.write(json.dumps({"start": "2024-01-01", "target": [1, 2], "cat": [0, 3]}) + "\\n")
>>> series_shape(open_source(path))
(2, 0)
"""

from __future__ import annotations

import csv
import dataclasses
import json
from typing import Any

import fsspec
import pyarrow.parquet as pq

from streamfit.core.algorithm import Algorithm
from streamfit.core.windows import WindowsMode
from streamfit.data.series_columns import is_long
from streamfit.data.source import FileSource, Source, SourceOptions, detect_format
from streamfit.data.sql import SQLSource
from streamfit.errors import ConfigError, DataError

__all__ = ["series_options", "series_shape"]


def series_options(
    algo: Algorithm[Any], options: SourceOptions, mode: WindowsMode
) -> SourceOptions:
    """``options`` for a channel that ``algo`` reads in ``mode``: windows of series for an
    algorithm that reads series, else ``options`` unchanged (rows)."""
    if not algo.reads_series():
        return options
    return dataclasses.replace(options, series=algo.series_reading(mode))


def series_shape(source: Source) -> tuple[int, int]:
    """``(categories, covariates)`` of the first series of ``source``."""
    if isinstance(source, SQLSource):  # long-format rows: the query's columns
        return _long_shape(source.column_names())
    if not isinstance(source, FileSource):
        raise ConfigError(
            f"{source.name}: cannot look ahead in this source to count its series' cat and "
            "dynamic_feat: give cardinality and num_dynamic_feat (or 'ignore')"
        )
    path = source.paths[0]
    with fsspec.open(path, "rb", compression="infer") as f:
        head = f.peek(4096) if hasattr(f, "peek") else b""
        fmt = source.options.format() or detect_format(path, bytes(head[:4096]))
        if fmt == "parquet":
            return _parquet_shape(f, path)
        if fmt == "csv":  # long-format rows: their header names the columns
            header = f.readline().decode("utf-8-sig", errors="replace")
            return _long_shape([c.strip() for c in next(csv.reader([header]), [])])
        if fmt != "jsonl":
            raise ConfigError(
                f"{path}: series are read from JSON Lines, Parquet or CSV rows, not {fmt}"
            )
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"not JSON: {exc}", source=path, row=number) from exc
                if not isinstance(record, dict):
                    raise DataError("a series is a JSON object", source=path, row=number)
                return _count(record.get("cat")), _count(record.get("dynamic_feat"))
    raise ConfigError(f"{path}: no series to train on")


def _count(value: object) -> int:
    return len(value) if isinstance(value, list) else 0


def _long_shape(names: list[str]) -> tuple[int, int]:
    """``(categories, covariates)`` of long-format rows: ``cat_0 ..`` and
    ``dynamic_feat_0 ..`` columns, counted up to the first absent."""
    counts = []
    for prefix in ("cat_", "dynamic_feat_"):
        n = 0
        while f"{prefix}{n}" in names:
            n += 1
        counts.append(n)
    return counts[0], counts[1]


def _parquet_shape(f: object, path: str) -> tuple[int, int]:
    table = pq.ParquetFile(f)
    if is_long(table.schema_arrow.names):
        return _long_shape(table.schema_arrow.names)
    names = set(table.schema_arrow.names)
    columns = [c for c in ("cat", "dynamic_feat") if c in names]
    if not columns or table.metadata.num_rows == 0:
        return 0, 0
    first = table.read_row_group(0, columns=columns).slice(0, 1).to_pylist()[0]
    return _count(first.get("cat")), _count(first.get("dynamic_feat"))
