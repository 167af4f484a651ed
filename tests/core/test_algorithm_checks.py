"""Checks every registered algorithm must pass, discovered from the registry.

A new algorithm needs an entry in ``CASES`` (how to train it on small data and how to score
it); ``test_every_algorithm_has_a_case`` fails until it has one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from streamfit import (
    Batcher,
    ConfigError,
    TrainingInterrupted,
    algorithm_names,
    get_algorithm,
    load_model,
    open_source,
    train,
)
from streamfit.core.state import State
from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.source import FileSource
from tests.conftest import BinaryFiles


@dataclass(frozen=True)
class Case:
    """How the checks train and judge one algorithm."""

    hyperparameters: dict[str, Any]
    metric: str  # a validation metric, lower is better
    memory_script: str  # builds `algo` and `blocks(n)` for the memory check
    #: Hyperparameters that keep several epochs going (no early stop) for the read-once check.
    multi_epoch: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "factorization-machines": Case(
        hyperparameters={
            "feature_dim": 8,
            "num_factors": 4,
            "predictor_type": "binary_classifier",
            "linear_lr": 0.05,
            "factors_lr": 0.05,
            "mini_batch_size": 500,
        },
        metric="binary_classification_cross_entropy",
        memory_script="""
            from streamfit.datagen import linear_task
            algo = "factorization-machines"
            hp = {"feature_dim": 20, "num_factors": 8, "predictor_type": "binary_classifier"}
            blocks = linear_task(20, "binary").blocks
        """,
    ),
    "linear-learner": Case(
        hyperparameters={
            "predictor_type": "binary_classifier",
            "num_models": 4,
            "mini_batch_size": 500,
            "num_point_for_scaler": 1000,
        },
        metric="objective_loss",
        multi_epoch={"early_stopping_patience": 100},
        memory_script="""
            from streamfit.datagen import linear_task
            algo = "linear-learner"
            hp = {"predictor_type": "binary_classifier", "num_models": 8}
            blocks = linear_task(20, "binary").blocks
        """,
    ),
    "kmeans": Case(
        hyperparameters={"k": 4, "mini_batch_size": 500},
        metric="msd",
        memory_script="""
            from streamfit.datagen import cluster_task
            algo = "kmeans"
            hp = {"k": 5}
            blocks = cluster_task(20, 5).blocks
        """,
    ),
    "pca": Case(
        # Randomized: the mode that draws random numbers, so that the seed checks bite (regular
        # mode has no randomness); 8 features cap its sketch at 8 columns.
        hyperparameters={
            "num_components": 3,
            "algorithm_mode": "randomized",
            "mini_batch_size": 500,
        },
        metric="reconstruction_mse",
        memory_script="""
            from streamfit.datagen import low_rank_task
            algo = "pca"
            hp = {"num_components": 3, "algorithm_mode": "randomized"}
            blocks = low_rank_task(20, 3).blocks
        """,
    ),
}

NAMES = algorithm_names()
#: Where the checks train: ``STREAMFIT_TEST_DEVICE=cuda`` runs them on a GPU (benchmarks/gpu.sh).
DEVICE = os.environ.get("STREAMFIT_TEST_DEVICE", "cpu")


def test_every_algorithm_has_a_case() -> None:
    assert sorted(CASES) == NAMES


def _train(name: str, data: BinaryFiles, **kwargs: Any) -> Any:
    return train(
        name,
        str(kwargs.pop("train", data.train)),
        hyperparameters=CASES[name].hyperparameters,
        progress=False,
        device=DEVICE,
        **kwargs,
    )


def _assert_same_state(a: State, b: State) -> None:
    assert a.tensors.keys() == b.tensors.keys()
    for key in a.tensors:
        assert torch.equal(a.tensors[key], b.tensors[key]), key
    assert a.meta == b.meta
    assert a.position == b.position
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


def _features(data: BinaryFiles) -> torch.Tensor:
    batch = next(iter(Batcher(open_source(str(data.test)), 5000)))
    return batch.dense_features()


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_gives_identical_predictions(
    name: str, binary_files: BinaryFiles, tmp_path: Any
) -> None:
    result = _train(name, binary_files, validation=str(binary_files.validation), output=tmp_path)
    x = _features(binary_files)
    loaded = load_model(tmp_path / "model", DEVICE)
    before, after = result.model.predict(x), loaded.predict(x)
    for key in before:
        assert torch.equal(before[key], after[key]), key
    state = State.load(tmp_path / "state", name, DEVICE)
    _assert_same_state(result.state, state)
    again = get_algorithm(name)(state.hyperparameters).finalize(state)
    for key, value in again.predict(x).items():
        assert torch.equal(before[key], value), key


@pytest.mark.parametrize("epochs", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_interrupted_and_resumed_equals_uninterrupted(
    name: str, epochs: int, binary_files: BinaryFiles, tmp_path: Any
) -> None:
    whole = _train(name, binary_files, epochs=epochs)
    ckpt = tmp_path / "ckpt"
    stops = [7, 13, 29] if epochs == 2 else [7, 13]  # batches per run before "crashing"
    for limit in stops:
        with pytest.raises(TrainingInterrupted):
            _train(name, binary_files, epochs=epochs, checkpoint_dir=ckpt, max_batches=limit)
    resumed = _train(name, binary_files, epochs=epochs, checkpoint_dir=ckpt)
    _assert_same_state(whole.state, resumed.state)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_model_other_seed_other_model(name: str, binary_files: BinaryFiles) -> None:
    a = _train(name, binary_files)
    b = _train(name, binary_files)
    _assert_same_state(a.state, b.state)
    hp = {**CASES[name].hyperparameters, "seed": 1}
    c = train(name, str(binary_files.train), hyperparameters=hp, progress=False, device=DEVICE)
    assert not all(torch.equal(a.state.tensors[k], c.state.tensors[k]) for k in a.state.tensors)


class CountingSource(FileSource):
    """A real file source that counts the rows it hands out and the reads started."""

    reads = 0
    rows = 0

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        CountingSource.reads += 1
        for chunk in super()._read(skip, checker):
            CountingSource.rows += chunk.n_rows
            yield chunk


@pytest.mark.parametrize("name", NAMES)
def test_input_is_read_once_per_epoch(name: str, binary_files: BinaryFiles) -> None:
    CountingSource.reads = CountingSource.rows = 0
    path = str(binary_files.train)
    source = CountingSource(path, [path], open_source(path).options)
    hp = {**CASES[name].hyperparameters, **CASES[name].multi_epoch}
    result = train(name, source, hyperparameters=hp, epochs=3, progress=False, device=DEVICE)
    assert CountingSource.reads == 3
    assert CountingSource.rows == 3 * binary_files.n_train
    assert result.state.counters["rows"] == 3 * binary_files.n_train


@pytest.mark.parametrize("name", NAMES)
def test_merge_of_shards_is_within_tolerance_of_one_pass(
    name: str, binary_files: BinaryFiles
) -> None:
    algo_cls = get_algorithm(name)
    case = CASES[name]
    validation = str(binary_files.validation)
    whole = _train(name, binary_files, validation=validation)
    a = _train(name, binary_files, train=binary_files.shard_a)
    b = _train(name, binary_files, train=binary_files.shard_b)
    algo = algo_cls(case.hyperparameters)
    merged = algo.merge(a.state, b.state)
    batches = lambda: Batcher(  # noqa: E731
        open_source(validation), 1000, device=DEVICE, n_features=merged.n_features
    )
    algo.calibrate(merged, batches())
    merged_metric = algo.evaluate(algo.finalize(merged), batches())[case.metric]
    whole_metric = whole.metrics[f"validation:{case.metric}"]
    assert merged.counters["rows"] == binary_files.n_train
    gap = abs(merged_metric - whole_metric) / abs(whole_metric)
    print(f"{name}: merged {merged_metric:.6g} vs one pass {whole_metric:.6g} ({gap:.2%})")
    assert gap <= algo_cls.merge_tolerance


MEMORY_SCRIPT = """
import json, resource, sys
import pyarrow as pa
from streamfit import train
from streamfit.data.source import Source, SourceOptions
from streamfit.data.chunk import Chunk
import numpy as np
{setup}
n = int(sys.argv[1])

class Generated(Source):
    def _read(self, skip, checker):
        pos = 0
        for batch in blocks(n, block=20_000):
            yield Chunk(batch, np.arange(pos, pos + batch.num_rows), pos + batch.num_rows)
            pos += batch.num_rows

result = train(algo, Generated("generated", SourceOptions()), hyperparameters=hp, progress=False)
print(json.dumps({{"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rows": result.state.counters["rows"]}}))
"""


def _peak_rss(name: str, rows: int) -> float:
    setup = textwrap.dedent(CASES[name].memory_script)
    script = MEMORY_SCRIPT.format(setup=setup)
    out = subprocess.run(
        [sys.executable, "-c", script, str(rows)], capture_output=True, text=True, check=True
    )
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["rows"] == rows
    return float(doc["rss_mb"])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_peak_memory_does_not_grow_with_rows(name: str) -> None:
    small = _peak_rss(name, 10_000)
    large = _peak_rss(name, 1_000_000)
    assert large - small < 16, f"peak RSS {small:.0f} MB after 1e4 rows, {large:.0f} MB after 1e6"


@pytest.mark.parametrize("name", NAMES)
def test_state_bytes_is_what_init_state_allocates(name: str) -> None:
    """The memory check refuses states by this estimate: it must not drift from the truth."""
    algo = get_algorithm(name)(CASES[name].hyperparameters)
    width = algo.expected_features() or 50
    state = algo.init_state(width)
    actual = sum(t.numel() * t.element_size() for t in state.tensors.values())
    assert abs(algo.state_bytes(width) - actual) <= 0.05 * actual


@pytest.mark.parametrize("name", NAMES)
def test_every_float_hyperparameter_refuses_nan_and_infinity(name: str) -> None:
    cls = get_algorithm(name)
    base = CASES[name].hyperparameters
    fields = cls.hyperparameters_class.model_fields
    floats = [f for f, info in fields.items() if "float" in str(info.annotation)]
    for field_name in floats:
        for bad in ("nan", "inf", "-inf"):
            with pytest.raises(ConfigError, match=f"'{field_name}'='{bad}'"):
                cls({**base, field_name: bad})


@pytest.mark.parametrize("name", NAMES)
def test_a_state_too_large_for_memory_is_refused_before_allocating(name: str) -> None:
    algo = get_algorithm(name)(
        {
            **CASES[name].hyperparameters,
            **({"feature_dim": 10**12} if "feature_dim" in CASES[name].hyperparameters else {}),
        }
    )
    with pytest.raises(ConfigError, match=r"needs [\d.]+ [KMGTPE]B but only"):
        algo.init_state(10**12)
