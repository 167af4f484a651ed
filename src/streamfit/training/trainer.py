"""The trainer: one training job in-process.

It reads the train channel once per epoch, in fixed-size batches, folds each into the state,
checkpoints on a timer (and at every epoch end), stops cleanly on SIGTERM after a checkpoint,
and at the end calibrates on the validation channel, finalizes a model and measures it.

>>> # result = train("linear-learner", "train.csv", validation="val.csv",
>>> #                hyperparameters={"predictor_type": "binary_classifier"}, output="out/")
>>> # result.metrics["validation:roc_auc_score"]
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch

from streamfit.core.algorithm import Algorithm, BatchStream
from streamfit.core.batch import CSR, Batch
from streamfit.core.model import Model
from streamfit.core.registry import get_algorithm
from streamfit.core.state import Position, State
from streamfit.data.batcher import Batcher
from streamfit.data.checks import OnBadRows
from streamfit.data.source import Source, SourceOptions, open_source
from streamfit.errors import (
    ConfigError,
    IncompatibleStateError,
    TrainingDiverged,
    TrainingInterrupted,
)
from streamfit.training.checkpoint import Checkpoints, check_finite
from streamfit.training.inference import record_schema, with_input_schema
from streamfit.training.output import check_output, write_output
from streamfit.training.progress import TrainingProgress
from streamfit.training.provenance import check_same_input, data_identity
from streamfit.training.sweep import SweepPoint, parse_sweep, run_sweep, write_sweep

if TYPE_CHECKING:
    from streamfit.distributed.options import DistributedOptions

__all__ = [
    "StopFlag",
    "TrainResult",
    "TrainingRun",
    "compute_threads",
    "fold",
    "load_algorithm",
    "resolve_device",
    "train",
    "warm_up",
]

log = logging.getLogger(__name__)

AnyAlgorithm = Algorithm[Any]
AlgorithmLike = str | AnyAlgorithm


@dataclass
class TrainResult:
    model: Model
    state: State
    metrics: dict[str, float]
    output: Path | None = None
    #: One model per value of ``sweep``, with its metrics (on test, else validation).
    sweep: list[SweepPoint] = field(default_factory=list)


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA device is available")
    return dev


def load_algorithm(
    algorithm: AlgorithmLike, hyperparameters: Mapping[str, Any] | None = None
) -> AnyAlgorithm:
    if isinstance(algorithm, Algorithm):
        if hyperparameters:
            return type(algorithm)({**algorithm.hp.as_dict(), **hyperparameters})
        return algorithm
    return get_algorithm(algorithm)(hyperparameters or {})


def train(
    algorithm: AlgorithmLike,
    train: str | Source,
    *,
    validation: str | Source | None = None,
    test: str | Source | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    output: str | os.PathLike[str] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_seconds: float | None = 60.0,
    checkpoint_batches: int | None = None,
    init_state: str | os.PathLike[str] | State | None = None,
    epochs: int | None = None,
    device: str | torch.device = "cpu",
    content_type: str | None = None,
    label_column: str | None = None,
    on_bad_rows: OnBadRows = "error",
    progress: bool | None = None,
    max_batches: int | None = None,
    threads: int | None = None,
    sweep: str | tuple[str, list[Any]] | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    sync: bool = False,
    exchange_every: int | None = None,
) -> TrainResult:
    """Train ``algorithm`` on the ``train`` channel; see the module docstring.

    ``checkpoint_dir`` both receives checkpoints and, when it holds one, is resumed from.
    ``init_state`` starts incremental training from an earlier job's state on new data.
    ``max_batches`` stops after that many batches (with a checkpoint), as SIGTERM does.
    ``threads`` sets torch's CPU threads while training (default: all cores but one).
    ``sweep`` (``"k=2..40"``) also finalizes one model per value from the same state and
    measures them all in one read of the test channel (else validation).
    ``workers`` trains on that many Ray workers, each on a disjoint shard of ``train``, on
    the cluster at ``ray_address`` (default: a new local Ray); see :mod:`streamfit.distributed`
    for ``sync`` and ``exchange_every``.
    """
    dev = resolve_device(device)
    ckpts = Checkpoints(checkpoint_dir) if checkpoint_dir is not None else None
    state, resumed = _initial_state(algorithm, ckpts, init_state, dev, workers is not None)
    given = dict(hyperparameters or {})
    hp = given if state is None else {**state.hyperparameters, **given}
    algo = load_algorithm(algorithm, hp)
    if state is not None and resumed:
        _check_same_settings(str(ckpts.latest() if ckpts else ""), state, algo, given)
    if state is not None:
        algo.adopt(state)
    options = SourceOptions(
        content_type=content_type,
        label_column=label_column,
        labelled=algo.supervised,
        on_bad_rows=on_bad_rows,
        max_index=algo.expected_features(),
        hash_features=algo.hash_space(),
    )
    total_epochs = epochs if epochs is not None else algo.epochs
    if total_epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {total_epochs}")
    distributed = None
    if workers is not None:
        from streamfit.distributed.options import DistributedOptions  # Ray only when asked

        distributed = DistributedOptions.build(workers, ray_address, sync, exchange_every)
    elif ray_address is not None or sync or exchange_every is not None:
        raise ConfigError("ray_address, sync and exchange_every need workers")
    sources = {
        name: (uri, None if uri is None else open_source(uri, options))
        for name, uri in (("train", train), ("validation", validation), ("test", test))
    }
    if output is not None:  # before any row is read: a bad output fails now, not at the end
        check_output(output, sources, checkpoint_dir)
    train_source = sources["train"][1]
    assert train_source is not None
    identity = data_identity(train_source)
    if state is not None and resumed:
        check_same_input(str(ckpts.latest() if ckpts else ""), state.inputs.get("train"), identity)
    if ckpts is not None:
        ckpts.inputs = {"train": identity}
    width = algo.expected_features()
    if width is not None:  # a feature_dim too large is refused before the data is read
        algo.check_memory(width)
    run = TrainingRun(
        algo=algo,
        train=train_source,
        validation=sources["validation"][1],
        test=sources["test"][1],
        checkpoints=ckpts,
        epochs=total_epochs,
        device=dev,
        checkpoint_seconds=checkpoint_seconds,
        checkpoint_batches=checkpoint_batches,
        max_batches=max_batches,
        distributed=distributed,
    )
    # Measuring and sweeping read data while computing, as training does: same thread rule.
    with compute_threads(dev, threads):
        with TrainingProgress(algo.name, progress) as bar:
            state, seconds, rows = run.fit(state, bar)
        check_finite(algo.name, state)
        model, metrics = run.finish(state, seconds, rows)
        points: list[SweepPoint] = []
        channel = "test" if run.test is not None else "validation"
        if sweep is not None:
            name, values = parse_sweep(sweep) if isinstance(sweep, str) else sweep
            stream = run.stream(run.test or run.validation, state)
            points = run_sweep(algo, state, name, values, stream() if stream else None, channel)
    state.inputs["train"] = identity
    out = write_output(output, model, state, metrics) if output is not None else None
    if out is not None and points:
        write_sweep(points, out)
    return TrainResult(model, state, metrics, out, points)


@contextmanager
def compute_threads(device: torch.device, threads: int | None) -> Iterator[None]:
    """Leave a core to the reader thread: on small batches, intra-op threads that compete
    with it cost more than they give (measured here: two threads on two cores made a
    1000 x 50 elementwise op a hundred times slower)."""
    previous = torch.get_num_threads()
    if threads is None:
        threads = previous
        if device.type == "cpu":
            threads = max(1, min(previous, (os.cpu_count() or 2) - 1))
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class StopFlag:
    """Set by SIGTERM; the loop checkpoints and exits at the next batch boundary."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


@dataclass
class TrainingRun:
    """One call of :func:`train`: its channels and settings."""

    algo: AnyAlgorithm
    train: Source
    validation: Source | None
    test: Source | None
    checkpoints: Checkpoints | None
    epochs: int
    device: torch.device
    checkpoint_seconds: float | None
    checkpoint_batches: int | None
    max_batches: int | None
    #: Train on Ray workers (``streamfit.distributed``) rather than in this process.
    distributed: DistributedOptions | None = None
    #: Metrics the fitting adds (a distributed run's workers and restarts).
    extra_metrics: dict[str, float] = field(default_factory=dict)

    def stream(self, source: Source | None, state: State) -> BatchStream | None:
        """A way to read ``source`` again, as batches of the state's width."""
        if source is None:
            return None
        algo, device = self.algo, self.device
        named = source.expecting(state.inputs.get("schema"))  # columns by name, as trained

        def batches() -> Iterator[Batch]:
            return iter(
                Batcher(named, algo.mini_batch_size, device=device, n_features=state.n_features)
            )

        return batches

    def done(self, state: State | None) -> bool:
        if state is None:
            return False
        return state.position.epoch >= self.epochs or state.trainer.stopped_early

    def fit(self, state: State | None, bar: TrainingProgress) -> tuple[State, float, int]:
        """Train until the last epoch; returns the state, the seconds and rows of this run."""
        if self.distributed is not None:
            from streamfit.distributed.driver import fit_distributed

            return fit_distributed(self, state, bar)
        algo, ckpts = self.algo, self.checkpoints
        started = time.perf_counter()
        last_save = time.monotonic()
        rows = batches_done = 0
        with StopFlag() as stop:
            while not self.done(state):
                skip = state.position.rows if state is not None else 0
                width = state.n_features if state is not None else algo.expected_features()
                # Named columns are matched to those the state was trained on, if any.
                train = self.train.expecting(state.inputs.get("schema") if state else None)
                batches: Iterator[Batch] = iter(
                    Batcher(
                        train,
                        algo.mini_batch_size,
                        device=self.device,
                        skip=skip,
                        n_features=width,
                    )
                )
                if state is None or not state.trainer.rows:
                    state, batches = warm_up(algo, state, batches, self.device, self.train.name)
                record_schema(state, train)
                epoch = state.position.epoch
                for batch in batches:
                    loss = fold(algo, state, batch)
                    rows += batch.n_rows
                    batches_done += 1
                    bar.advance(batch.n_rows, loss / max(batch.n_rows, 1), epoch)
                    if self.max_batches is not None and batches_done >= self.max_batches:
                        stop.requested = True
                    due = (
                        self.checkpoint_batches is not None
                        and batches_done % self.checkpoint_batches == 0
                    ) or (
                        self.checkpoint_seconds is not None
                        and time.monotonic() - last_save >= self.checkpoint_seconds
                    )
                    if ckpts is not None and (due or stop.requested):
                        ckpts.save(state)
                        last_save = time.monotonic()
                    if stop.requested:
                        where = f"epoch {epoch + 1}, row {state.position.rows}"
                        saved = f"; checkpoint in {ckpts.folder}" if ckpts else " (no checkpoints)"
                        raise TrainingInterrupted(f"stopped at {where}{saved}")
                record_schema(state, train)  # a resumed state from before schemas
                if algo.end_epoch(state, self.stream(self.validation, state)):
                    state.trainer.stopped_early = True
                    log.info("early stopping after epoch %d", epoch + 1)
                state.position = Position(epoch + 1, 0)
                if ckpts is not None:
                    ckpts.save(state)
                    last_save = time.monotonic()
                if not self.train.rereadable:  # a pipe: one pass over what it delivers
                    break
        assert state is not None
        return state, time.perf_counter() - started, rows

    def finish(self, state: State, seconds: float, rows: int) -> tuple[Model, dict[str, float]]:
        """Calibrate on validation, finalize, and measure on validation and test."""
        algo = self.algo
        validation = self.stream(self.validation, state)
        if validation is not None:
            algo.calibrate(state, validation())
        model = with_input_schema(algo.finalize(state), state)
        metrics: dict[str, float] = {
            "train:rows": float(state.trainer.rows),
            "train:bad_rows": float(state.trainer.bad_rows),
            "train:epochs": float(state.position.epoch),
            "train:seconds": seconds,
            "train:rows_per_second": rows / seconds if seconds > 0 else math.nan,
            **self.extra_metrics,
        }
        for channel, source in (("validation", self.validation), ("test", self.test)):
            stream = self.stream(source, state)
            if stream is not None:
                for name, value in algo.evaluate(model, stream()).items():
                    metrics[f"{channel}:{name}"] = value
        return model, metrics


def fold(algo: AnyAlgorithm, state: State, batch: Batch) -> float:
    """Train ``state`` on ``batch`` and advance its position and counters; returns the
    batch's training loss (NaN if none). A loss that is NaN or infinite ends training
    (:class:`TrainingDiverged`): every later step would only spread it."""
    loss = algo.update(state, batch) if batch.n_rows else math.nan
    if batch.n_rows and algo.has_loss and not math.isfinite(loss):
        raise TrainingDiverged(
            f"{algo.name}: the training loss of the batch ending at row "
            f"{batch.end_position:,} (epoch {state.position.epoch + 1}) is {loss}: the "
            "settings make training diverge (a learning rate too large?) or the features are "
            "too large to train on as they are (scale them); the last checkpoint with finite "
            "values is kept"
        )
    state.position.rows = batch.end_position
    state.trainer.add({"rows": batch.n_rows, "bad_rows": batch.skipped, "batches": 1})
    return loss


def _check_same_settings(
    where: str, state: State, algo: AnyAlgorithm, given: Mapping[str, Any]
) -> None:
    """A checkpoint resumes under the hyperparameters it was trained with: only those that
    change no training (post-training ones, and ``epochs`` to train further passes) may
    differ. ``--init-state`` is the way to continue a state under other settings."""
    now = algo.hp.as_dict()
    changed = [
        f"{name}={state.hyperparameters.get(name)!r} -> {now.get(name)!r}"
        for name in given
        if name not in algo.post_training
        and name != "epochs"
        and now.get(name) != state.hyperparameters.get(name)
    ]
    if changed:
        raise IncompatibleStateError(
            f"{where}: cannot resume with other hyperparameters ({'; '.join(changed)}): to "
            "continue training this state under new settings, pass it as --init-state; to "
            "start afresh, use another --checkpoint-dir"
        )


def warm_up(
    algo: AnyAlgorithm,
    state: State | None,
    batches: Iterator[Batch],
    device: torch.device,
    name: str,
) -> tuple[State, Iterator[Batch]]:
    """Buffer the first ``warmup_rows`` rows for ``prepare`` (creating the state from the
    first of them if there is none yet); they are then trained on, as the returned batches."""
    held: list[Batch] = []
    rows = 0
    want = max(algo.warmup_rows(), 1)
    for batch in batches:
        if not held and batch.n_rows:  # the rows held here must fit beside the state
            per_row = _bytes(batch) / batch.n_rows
            algo.check_memory(batch.n_features, int(per_row * (want + 2 * algo.mini_batch_size)))
        held.append(batch)
        rows += batch.n_rows
        if rows >= want:
            break
    if state is None:
        first = next((b for b in held if b.n_rows), None)
        if first is None:
            raise ConfigError(f"{name}: no rows to train on")
        state = algo.init_state(first.n_features, device)
    algo.prepare(state, [b for b in held if b.n_rows])

    def chained() -> Iterator[Batch]:
        yield from held
        yield from batches

    return state, chained()


def _bytes(batch: Batch) -> int:
    f = batch.features
    parts = [f.indptr, f.indices, f.values] if isinstance(f, CSR) else [f]
    return sum(t.numel() * t.element_size() for t in parts)


def _initial_state(
    algorithm: AlgorithmLike,
    ckpts: Checkpoints | None,
    init_state: str | os.PathLike[str] | State | None,
    device: torch.device,
    distributed: bool = False,
) -> tuple[State | None, bool]:
    """The latest checkpoint (resume: ``True``), else ``init_state`` (incremental), else
    nothing."""
    name = algorithm.name if isinstance(algorithm, Algorithm) else get_algorithm(algorithm).name
    if ckpts is not None:
        resumed = ckpts.load_latest(name, device)
        layout = None if resumed is None else resumed.trainer.distributed
        if layout is not None and not distributed:
            workers = layout.workers
            raise ConfigError(
                f"{ckpts.latest()} was written by training on {workers} workers: "
                f"resume it with workers={workers} (--workers {workers})"
            )
        if resumed is not None:
            log.info("resuming from %s at %s", ckpts.latest(), resumed.position)
            return resumed, True
    if init_state is None:
        return None, False
    state = (
        init_state.clone().to(device)
        if isinstance(init_state, State)
        else State.load(init_state, name, device)
    )
    # Incremental training: the earlier data is in the state; this run reads new data.
    state.position = Position(0, 0)
    state.trainer.stopped_early = False
    state.trainer.distributed = None
    state.inputs.pop("train", None)
    return state, False
