"""Shared fixtures: small generated data sets written as real files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from streamfit.datagen import linear_task, write_batches


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread, for tests that call ``update`` directly, outside the trainer's
    thread setting: two threads on a shared two-core machine made their steps 10 to 50x
    slower. ``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@dataclass(frozen=True)
class BinaryFiles:
    """A binary task: two training shards, both together, validation and test."""

    train: Path
    shard_a: Path
    shard_b: Path
    validation: Path
    test: Path
    train_csv: Path
    n_features: int
    n_train: int


@pytest.fixture(scope="session")
def binary_files(tmp_path_factory: pytest.TempPathFactory) -> BinaryFiles:
    root = tmp_path_factory.mktemp("binary")
    task = linear_task(8, "binary", seed=3)
    n = 20_000
    half = n // 2
    write_batches(root / "a.parquet", task.blocks(half, block=5000))
    write_batches(root / "b.parquet", task.blocks(half, block=5000, offset=half))
    write_batches(root / "train.parquet", task.blocks(n, block=5000))
    write_batches(root / "train.csv", task.blocks(n, block=5000))
    write_batches(root / "validation.parquet", task.blocks(5000, offset=10**9))
    write_batches(root / "test.parquet", task.blocks(5000, offset=2 * 10**9))
    return BinaryFiles(
        train=root / "train.parquet",
        shard_a=root / "a.parquet",
        shard_b=root / "b.parquet",
        validation=root / "validation.parquet",
        test=root / "test.parquet",
        train_csv=root / "train.csv",
        n_features=8,
        n_train=n,
    )
