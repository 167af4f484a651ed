"""What a channel of series says about its shape before it is read: records, long-format rows
in CSV, Parquet and a SQL query (its columns, without fetching its rows)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfit.data.source import PipeSource, open_source
from streamfit.errors import ConfigError
from streamfit.training.series_input import series_shape


def test_long_rows_count_their_cat_and_dynamic_feat_columns(tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text(
        "item_id,timestamp,target,cat_0,cat_1,dynamic_feat_0,cat_3\na,2024-01-01,1,0,0,1,0\n"
    )
    assert series_shape(open_source(str(csv))) == (2, 1)  # cat_3 without cat_2: not counted
    parquet = tmp_path / "rows.parquet"
    pq.write_table(
        pa.table(
            {
                "item_id": ["a"],
                "timestamp": ["2024-01-01"],
                "target": [1.0],
                "dynamic_feat_0": [0.5],
                "dynamic_feat_1": [0.5],
            }
        ),
        parquet,
    )
    assert series_shape(open_source(str(parquet))) == (0, 2)
    db = tmp_path / "d.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (s TEXT, d TEXT, y REAL, k INT)")
    query = "SELECT s AS item_id, d AS timestamp, y AS target, k AS cat_0 FROM t ORDER BY d"
    assert series_shape(open_source(f"sqlite:///{db}#{query}")) == (1, 0)


def test_a_pipe_cannot_be_looked_ahead_in(tmp_path: Path) -> None:
    import io

    from streamfit.data.base import SourceOptions

    with pytest.raises(ConfigError, match="give cardinality and num_dynamic_feat"):
        series_shape(PipeSource("-", io.BytesIO(b""), SourceOptions()))
