"""Shards: disjoint, together every row exactly once, resumable within a shard."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamfit import Batcher, ConfigError, open_source
from streamfit.data.source import Source
from streamfit.datagen import linear_task, write_batches
from streamfit.distributed.shards import ByteRangeSource, RowRangeSource, split_source

N = 10_007  # not a multiple of anything


def _rows(source: Source, skip: int = 0) -> np.ndarray:
    batches = Batcher(source, 1000, skip=skip, n_features=6)
    return np.concatenate([b.dense_features().numpy() for b in batches])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    task = linear_task(6, "binary", seed=2)
    for ext in ("parquet", "csv", "jsonl", "libsvm"):
        write_batches(root / f"x.{ext}", task.blocks(N, block=2000))
    return root


@pytest.mark.parametrize("ext", ["parquet", "csv", "jsonl", "libsvm"])
@pytest.mark.parametrize("n", [2, 3, 7])
def test_shards_of_one_file_hold_every_row_once(files: Path, ext: str, n: int) -> None:
    source = open_source(str(files / f"x.{ext}"))
    shards = split_source(source, n)
    parts = [_rows(s) for s in shards]
    assert all(len(p) for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), _rows(source))
    kind = RowRangeSource if ext == "parquet" else ByteRangeSource
    assert all(isinstance(s, kind) for s in shards)


@pytest.mark.parametrize("ext", ["parquet", "csv"])
def test_a_shard_resumes_from_its_own_positions(files: Path, ext: str) -> None:
    shard = split_source(open_source(str(files / f"x.{ext}")), 3)[1]
    np.testing.assert_array_equal(_rows(shard, skip=1234), _rows(shard)[1234:])


def test_parquet_shards_take_whole_row_groups_when_there_are_enough(
    files: Path, tmp_path: Path
) -> None:
    path = tmp_path / "groups.parquet"
    pq.write_table(pq.read_table(files / "x.parquet"), path, row_group_size=2000)
    source = open_source(str(path))
    shards = split_source(source, 3)
    assert [(s.start, s.stop) for s in shards if isinstance(s, RowRangeSource)] == [
        (0, 4000),
        (4000, 6000),
        (6000, N),
    ]
    np.testing.assert_array_equal(np.concatenate([_rows(s) for s in shards]), _rows(source))


def test_folders_split_by_file_balanced_by_size(tmp_path: Path) -> None:
    task = linear_task(6, "binary", seed=2)
    for i, rows in enumerate([4000, 1000, 1000, 1000, 1000]):
        write_batches(tmp_path / f"part-{i}.csv", task.blocks(rows, offset=i * 10**6))
    shards = split_source(open_source(str(tmp_path)), 2)
    assert [len(_rows(s)) for s in shards] == [4000, 4000]


def test_what_cannot_be_split_is_refused(files: Path, tmp_path: Path) -> None:
    packed = tmp_path / "x.csv.gz"
    with (files / "x.csv").open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with pytest.raises(ConfigError, match="compressed"):
        split_source(open_source(str(packed)), 2)
    (tmp_path / "more").mkdir()
    for name in ("a.csv", "b.csv"):
        shutil.copy(files / "x.csv", tmp_path / "more" / name)
    with pytest.raises(ConfigError, match="2 files cannot feed 3 workers"):
        split_source(open_source(str(tmp_path / "more")), 3)
    assert split_source(open_source(str(packed)), 1)[0].name == str(packed)
