"""The small data sets the checks train on, and the parameters an algorithm declares."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamfit.core.algorithm import Algorithm
from streamfit.core.check_parameters import CheckParameters, GeneratedData
from streamfit.core.registry import algorithm_names, get_algorithm
from streamfit.data.chunk import FEATURES
from streamfit.datagen import SeriesTask, write_batches

__all__ = [
    "TRAIN_ROWS",
    "AlgorithmClass",
    "CheckData",
    "build_task",
    "check_parameters",
    "expect",
    "make_check_data",
    "parameters_of",
]

AlgorithmClass = type[Algorithm[Any]]

#: Rows of the checks' training file (half in each shard): enough for a few dozen batches.
TRAIN_ROWS = 20_000
_HELD_OUT_ROWS = 5_000
_BLOCK = 5_000


@dataclass(frozen=True)
class CheckData:
    """The files the checks read: training (and its two halves), validation and test."""

    train: Path
    shard_a: Path
    shard_b: Path
    validation: Path
    test: Path
    #: The rows' width; None for series, whose windows' width the algorithm sets.
    n_features: int | None
    n_train: int


def expect(condition: object, message: str) -> None:
    """``assert``, but kept under ``python -O``: the checks are library code."""
    if not condition:
        raise AssertionError(message)


def parameters_of(algorithm: AlgorithmClass) -> CheckParameters:
    """``algorithm.check_parameters``, or an AssertionError that says what to declare."""
    params = getattr(algorithm, "check_parameters", None)
    if not isinstance(params, CheckParameters):
        raise AssertionError(
            f"{algorithm.__name__} declares no check_parameters (a CheckParameters of "
            f"streamfit.core.check_parameters, got {params!r}): see docs/adding-an-algorithm.md"
        )
    return params


def check_parameters() -> dict[str, CheckParameters]:
    """Every registered algorithm's check parameters, by name.

    >>> sorted(check_parameters())[:3]
    ['deepar', 'factorization-machines', 'kmeans']
    """
    return {name: parameters_of(get_algorithm(name)) for name in algorithm_names()}


def build_task(data: GeneratedData) -> Any:
    """The task ``data`` names: anything with ``blocks(n_rows, block=, offset=)``.

    >>> build_task(GeneratedData("cluster_task", (4, 2))).centers.shape
    (2, 4)
    """
    module, _, function = data.task.rpartition(":")
    # A round trip through JSON: what the memory check's child process will receive.
    args = json.loads(json.dumps(list(data.args)))
    options = json.loads(json.dumps(dict(data.options)))
    factory = getattr(importlib.import_module(module or "streamfit.datagen"), function)
    return factory(*args, **options)


def make_check_data(folder: str | Path, data: GeneratedData | None = None) -> CheckData:
    """Write ``data`` (default: the checks' own, a binary task of 8 features) under
    ``folder`` as Parquet files; deterministic, a second or so."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    task = build_task(data or CheckParameters.data)
    half = TRAIN_ROWS // 2
    files = {  # name: (rows, offset); the shards are the two halves of train
        "a": (half, 0),
        "b": (half, half),
        "train": (TRAIN_ROWS, 0),
        "validation": (_HELD_OUT_ROWS, 10**9),
        "test": (_HELD_OUT_ROWS, 2 * 10**9),
    }
    for name, (rows, offset) in files.items():
        write_batches(root / f"{name}.parquet", task.blocks(rows, block=_BLOCK, offset=offset))
    return CheckData(
        train=root / "train.parquet",
        shard_a=root / "a.parquet",
        shard_b=root / "b.parquet",
        validation=root / "validation.parquet",
        test=root / "test.parquet",
        n_features=_width(task),
        n_train=TRAIN_ROWS,
    )


def _width(task: Any) -> int | None:
    """The task's ``n_features``, else the width of its dense rows (None: series)."""
    if isinstance(task, SeriesTask):
        return None
    width = getattr(task, "n_features", None)
    if width is None:
        column = next(iter(task.blocks(1, block=1))).column(FEATURES)
        width = column.type.list_size
    return int(width)
