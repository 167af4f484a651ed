"""The checks' data and the parameters algorithms declare."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfit import algorithm_names
from streamfit.algorithms.kmeans import KMeans
from streamfit.checks import CheckParameters, GeneratedData, check_parameters, make_check_data
from streamfit.checks.data import TRAIN_ROWS, build_task, parameters_of


def test_the_shards_are_the_two_halves_of_the_training_file(tmp_path: Path) -> None:
    data = make_check_data(tmp_path)
    train = pq.read_table(data.train)
    halves = pa.concat_tables([pq.read_table(data.shard_a), pq.read_table(data.shard_b)])
    assert train.equals(halves)
    assert data.n_train == train.num_rows == TRAIN_ROWS
    assert data.n_features == 8
    held_out = pq.read_table(data.validation).column(0)
    assert not pq.read_table(data.test).column(0).equals(held_out)  # other rows


def test_the_data_an_algorithm_names_is_written(tmp_path: Path) -> None:
    data = make_check_data(tmp_path, GeneratedData("low_rank_task", (12, 2)))
    assert data.n_features == 12
    assert pq.read_table(data.test).num_rows == 5000


def test_a_generator_of_ones_own_is_named_module_colon_function() -> None:
    task = build_task(GeneratedData("streamfit.datagen:linear_task", (3,), {"seed": 5}))
    assert (task.n_features, task.seed) == (3, 5)


def test_every_registered_algorithm_declares_its_parameters() -> None:
    found = check_parameters()
    assert sorted(found) == algorithm_names()
    assert all(isinstance(p, CheckParameters) for p in found.values())


def test_an_algorithm_without_parameters_is_told_what_to_declare() -> None:
    class Undeclared(KMeans):
        check_parameters = None  # type: ignore[assignment]

    with pytest.raises(AssertionError, match=r"Undeclared declares no check_parameters.*adding-an"):
        parameters_of(Undeclared)
