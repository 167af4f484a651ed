"""Shards of a forecaster's series, which cut no series apart: records split by file or by
the lines of one JSON Lines file, long-format rows by item (every row to every worker, each
keeping its share of the items)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamfit import ConfigError
from streamfit.algorithms.deepar import DeepAR
from streamfit.data.base import SourceOptions
from streamfit.data.chunk import dense_arrays
from streamfit.data.source import Source, open_source
from streamfit.datagen import series_task
from streamfit.distributed.shards import ByteRangeSource, describe, split_source

ALGO = DeepAR(
    time_freq="Q", context_length=4, prediction_length=2, cardinality=[8], num_dynamic_feat="ignore"
)
OPTIONS = SourceOptions(series=ALGO.series_reading("train"))


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("series")
    targets, cats = series_task(12, 4).series(np.random.default_rng(0), 40)
    records, rows = folder / "s.jsonl", folder / "s.csv"
    with open(records, "w") as f:
        for y, c in zip(targets, cats, strict=True):
            f.write(json.dumps({"start": "2000-01-01", "target": y.tolist(), "cat": [int(c)]}))
            f.write("\n")
    quarters = np.arange("2000-01", "2010-01", 3, dtype="datetime64[M]")
    with open(rows, "w") as f:
        f.write("item_id,timestamp,target,cat_0\n")
        for t in range(targets.shape[1]):
            for i in range(len(targets)):
                f.write(f"s{i},{quarters[t]}-01,{targets[i, t]},{int(cats[i])}\n")
    return {"records": records, "rows": rows}


def _windows(source: Source) -> np.ndarray:
    x = np.concatenate([dense_arrays(c.batch) for c in source.read()])
    return x[np.lexsort(x.T[::-1])]


@pytest.mark.parametrize("kind", ["records", "rows"])
def test_shards_hold_every_window_once(series: dict[str, Path], kind: str) -> None:
    whole = open_source(str(series[kind]), OPTIONS)
    shards = split_source(whole, 3)
    if kind == "records":
        assert all(isinstance(s, ByteRangeSource) for s in shards)
    else:
        assert [s.options.series_shard for s in shards] == [(0, 3), (1, 3), (2, 3)]
        assert describe(shards)[1].endswith("[items 2/3]")
    parts = [_windows(s) for s in shards]
    assert all(len(p) for p in parts)
    together = np.concatenate(parts)
    np.testing.assert_array_equal(together[np.lexsort(together.T[::-1])], _windows(whole))


def test_a_shard_of_rows_resumes_at_its_positions(series: dict[str, Path]) -> None:
    shard = split_source(open_source(str(series["rows"]), OPTIONS), 2)[1]
    chunks = list(shard.read())
    positions = np.concatenate([c.positions for c in chunks])
    x = np.concatenate([dense_arrays(c.batch) for c in chunks])
    skip = int(positions[len(positions) // 2])
    rest = list(shard.read(skip))
    np.testing.assert_array_equal(
        np.concatenate([dense_arrays(c.batch) for c in rest]), x[positions >= skip]
    )


def test_series_records_that_cannot_be_split(series: dict[str, Path], tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "s.jsonl.gz"
    packed.write_bytes(gzip.compress(series["records"].read_bytes()))
    with pytest.raises(ConfigError, match="by file or by the lines of one uncompressed JSON"):
        split_source(open_source(str(packed), OPTIONS), 2)
