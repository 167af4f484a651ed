"""Checks that train an algorithm on the checks' small data: checkpoints, resume, seeds,
reads and merges."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamfit.checks.data import AlgorithmClass, CheckData, expect, make_check_data, parameters_of
from streamfit.core.state import State
from streamfit.data.batcher import Batcher
from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.source import FileSource, SourceOptions, open_source
from streamfit.errors import TrainingInterrupted
from streamfit.training.series_input import series_options
from streamfit.training.trainer import TrainResult, train

__all__ = [
    "assert_same_state",
    "check_checkpoint_round_trip",
    "check_merge_within_tolerance",
    "check_reads_input_once_per_epoch",
    "check_resume_equals_uninterrupted",
    "check_seeding",
]


@contextmanager
def checked_data(algorithm: AlgorithmClass, data: CheckData | None) -> Iterator[CheckData]:
    """``data``, or the algorithm's own check data written to a temporary folder."""
    if data is not None:
        yield data
        return
    with tempfile.TemporaryDirectory(prefix="streamfit-checks-") as folder:
        yield make_check_data(folder, parameters_of(algorithm).data)


def held_out_options(algorithm: AlgorithmClass) -> SourceOptions:
    """How the checks read a held-out file for ``algorithm``: rows, or (a forecaster) each
    series' last steps held out, as the trainer reads a test channel."""
    algo = algorithm(parameters_of(algorithm).hyperparameters)
    return series_options(algo, SourceOptions(labelled=algorithm.supervised), "test")


def _train(
    algorithm: AlgorithmClass,
    train_on: str | FileSource,
    device: str,
    extra: dict[str, Any] | None = None,
    **kwargs: Any,
) -> TrainResult:
    hp = {**parameters_of(algorithm).hyperparameters, **(extra or {})}
    return train(algorithm(hp), train_on, progress=False, device=device, **kwargs)


def assert_same_state(a: State, b: State, what: str = "states") -> None:
    """Equal tensors, meta, position and generator, or an AssertionError naming the first
    difference."""
    expect(
        a.tensors.keys() == b.tensors.keys(),
        f"{what}: tensors {sorted(a.tensors)} != {sorted(b.tensors)}",
    )
    for key in a.tensors:
        expect(torch.equal(a.tensors[key], b.tensors[key]), f"{what}: tensor {key!r} differs")
    expect(a.meta == b.meta, f"{what}: meta differs: {a.meta} != {b.meta}")
    expect(a.position == b.position, f"{what}: position {a.position} != {b.position}")
    expect(
        torch.equal(a.generator.get_state(), b.generator.get_state()),
        f"{what}: the random generators are in different states",
    )


def check_checkpoint_round_trip(
    algorithm: AlgorithmClass, data: CheckData | None = None, *, device: str = "cpu"
) -> None:
    """The saved model and the saved state, loaded again, predict exactly what the trained
    model does."""
    with checked_data(algorithm, data) as d, tempfile.TemporaryDirectory() as out:
        result = _train(algorithm, str(d.train), device, validation=str(d.validation), output=out)
        test = open_source(str(d.test), held_out_options(algorithm))
        x = next(iter(Batcher(test, 5000, n_features=d.n_features))).dense_features()
        before = result.model.predict(x)
        loaded = algorithm.model_class.load(Path(out) / "model", device)
        for key, value in loaded.predict(x).items():
            expect(torch.equal(before[key], value), f"the loaded model's {key!r} differs")
        state = State.load(Path(out) / "state", algorithm.name, device)
        assert_same_state(result.state, state, "trained and loaded states")
        again = algorithm(state.hyperparameters).finalize(state)
        for key, value in again.predict(x).items():
            expect(torch.equal(before[key], value), f"{key!r} of a model of the loaded state")


def check_resume_equals_uninterrupted(
    algorithm: AlgorithmClass,
    data: CheckData | None = None,
    *,
    epochs: int = 1,
    device: str = "cpu",
) -> None:
    """Training stopped after a few batches, several times, then resumed from its
    checkpoints, ends in the very state of training without a stop."""
    # Batches per run before "crashing": the third stop falls in the second epoch.
    stops = [7, 13, 29] if epochs > 1 else [7, 13]
    with checked_data(algorithm, data) as d, tempfile.TemporaryDirectory() as ckpt:
        whole = _train(algorithm, str(d.train), device, epochs=epochs)
        for limit in stops:
            try:
                _train(
                    algorithm,
                    str(d.train),
                    device,
                    epochs=epochs,
                    checkpoint_dir=ckpt,
                    max_batches=limit,
                )
            except TrainingInterrupted:
                continue
            raise AssertionError(f"training with max_batches={limit} was not interrupted")
        resumed = _train(algorithm, str(d.train), device, epochs=epochs, checkpoint_dir=ckpt)
        assert_same_state(whole.state, resumed.state, f"uninterrupted and resumed ({epochs=})")


def check_seeding(
    algorithm: AlgorithmClass, data: CheckData | None = None, *, device: str = "cpu"
) -> None:
    """The same seed gives the same state; another seed, another one."""
    with checked_data(algorithm, data) as d:
        a = _train(algorithm, str(d.train), device)
        b = _train(algorithm, str(d.train), device)
        assert_same_state(a.state, b.state, "two runs with the same seed")
        c = _train(algorithm, str(d.train), device, {"seed": 1})
        same = all(torch.equal(a.state.tensors[k], c.state.tensors[k]) for k in a.state.tensors)
        expect(
            not same,
            "seeds 0 and 1 give the same state: does the algorithm draw from its state's "
            "generator?",
        )


@dataclass
class _Tally:
    reads: int = 0
    rows: int = 0


class _CountingSource(FileSource):
    """A real file source that counts the reads started and the rows handed out (in a tally
    that copies of the source share)."""

    def __init__(self, path: str, tally: _Tally) -> None:
        super().__init__(path, [path], open_source(path).options)
        self.tally = tally

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        self.tally.reads += 1
        for chunk in super()._read(skip, checker):
            self.tally.rows += chunk.n_rows
            yield chunk


def check_reads_input_once_per_epoch(
    algorithm: AlgorithmClass, data: CheckData | None = None, *, device: str = "cpu"
) -> None:
    """Three epochs read the training data three times, every row once each time."""
    params = parameters_of(algorithm)
    with checked_data(algorithm, data) as d:
        tally = _Tally()
        source = _CountingSource(str(d.train), tally)
        result = _train(algorithm, source, device, dict(params.multi_epoch), epochs=3)
        expect(tally.reads == 3, f"3 epochs started {tally.reads} reads of the training data")
        expect(tally.rows == 3 * d.n_train, f"3 epochs read {tally.rows} of 3 × {d.n_train} rows")
        rows = result.state.trainer.rows
        expect(rows == 3 * d.n_train, f"3 epochs of {d.n_train} rows counted {rows}")


def check_merge_within_tolerance(
    algorithm: AlgorithmClass, data: CheckData | None = None, *, device: str = "cpu"
) -> None:
    """Two halves trained apart and merged score within ``merge_tolerance`` of one pass
    over both, by the algorithm's validation metric."""
    params = parameters_of(algorithm)
    with checked_data(algorithm, data) as d:
        validation = str(d.validation)
        whole = _train(algorithm, str(d.train), device, validation=validation)
        a = _train(algorithm, str(d.shard_a), device)
        b = _train(algorithm, str(d.shard_b), device)
        algo = algorithm(params.hyperparameters)
        merged = algo.merge(a.state, b.state)
        rows = merged.trainer.rows
        expect(rows == d.n_train, f"merged shards of {d.n_train} rows counted {rows}")

        def batches() -> Batcher:
            source = open_source(validation, held_out_options(algorithm))
            return Batcher(source, 1000, device=device, n_features=merged.n_features)

        algo.calibrate(merged, batches())
        metrics = algo.evaluate(algo.finalize(merged), batches())
        expect(params.metric in metrics, f"no validation metric {params.metric!r} in {metrics}")
        merged_metric = metrics[params.metric]
        whole_metric = whole.metrics[f"validation:{params.metric}"]
        gap = abs(merged_metric - whole_metric) / abs(whole_metric)
        expect(
            gap <= algorithm.merge_tolerance,
            f"{params.metric}: merged {merged_metric:.6g}, one pass {whole_metric:.6g}: "
            f"{gap:.2%} apart, more than merge_tolerance {algorithm.merge_tolerance:.2%}",
        )
