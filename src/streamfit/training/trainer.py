"""The trainer: one training job.

It opens the channels, resumes from a checkpoint or starts from an earlier state, reads the
train channel once per epoch in fixed-size batches through the loop
(:mod:`streamfit.training.loop`: folds, checkpoints on a timer and at every epoch end, stops
cleanly on SIGTERM after a checkpoint), and at the end calibrates on the validation channel,
finalizes a model, measures it and writes the output folder.

The epochs run in this process unless a :class:`Fitter` runs them elsewhere:
:mod:`streamfit.distributed` provides one for Ray workers, and ``streamfit.train``
(:mod:`streamfit.fitting`) picks it when asked for workers, so that training never imports
the distributed package.

>>> import tempfile
>>> from pathlib import Path
>>> from streamfit.datagen import linear_task, write_batches
>>> folder = Path(tempfile.mkdtemp())
>>> task = linear_task(5, "binary", seed=1, signal=3.5)
>>> _ = write_batches(folder / "train.parquet", task.blocks(4000))
>>> _ = write_batches(folder / "val.parquet", task.blocks(1000, offset=10**6))
>>> result = train("linear-learner", str(folder / "train.parquet"),
...                validation=str(folder / "val.parquet"), output=folder / "out",
...                hyperparameters={"predictor_type": "binary_classifier"}, progress=False)
>>> result.metrics["validation:roc_auc_score"] > 0.85
True
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from streamfit.core.algorithm import Algorithm, BatchStream
from streamfit.core.batch import Batch
from streamfit.core.model import Model
from streamfit.core.registry import get_algorithm
from streamfit.core.state import Position, State
from streamfit.core.windows import WindowsMode
from streamfit.data.auxiliary import TEXT_KEY, text_settings
from streamfit.data.batcher import Batcher
from streamfit.data.checks import OnBadRows
from streamfit.data.source import Source, SourceOptions, open_source
from streamfit.data.vocabulary import Vocabulary
from streamfit.errors import ConfigError, IncompatibleStateError
from streamfit.training.checkpoint import Checkpoints, check_finite
from streamfit.training.curves import CURVES_FILE, CurveRecorder
from streamfit.training.loop import Loop, StopFlag, warm_up
from streamfit.training.output import check_output, write_output
from streamfit.training.progress import TrainingProgress
from streamfit.training.provenance import check_same_input, data_identity
from streamfit.training.publish import Publisher
from streamfit.training.schema import record_schema, with_input_schema
from streamfit.training.series_input import series_options, series_shape
from streamfit.training.sweep import SweepPoint, parse_sweep, run_sweep, write_sweep

__all__ = [
    "Fitter",
    "TrainResult",
    "TrainingRun",
    "compute_threads",
    "load_algorithm",
    "resolve_device",
    "train",
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
    fitter: Fitter | None = None,
    auxiliary: str | os.PathLike[str] | None = None,
    stop_words: bool | None = None,
    publish_every: float | None = None,
    keep_versions: int = 5,
) -> TrainResult:
    """Train ``algorithm`` on the ``train`` channel; see the module docstring.

    ``checkpoint_dir`` both receives checkpoints and, when it holds one, is resumed from.
    ``init_state`` starts incremental training from an earlier job's state on new data.
    ``max_batches`` stops after that many batches (with a checkpoint), as SIGTERM does.
    ``threads`` sets torch's CPU threads while training (default: all cores but one).
    ``sweep`` (``"k=2..40"``) also finalizes one model per value from the same state and
    measures them all in one read of the test channel (else validation).
    ``fitter`` runs the epochs elsewhere (on Ray workers: ``streamfit.train(workers=...)``).
    ``auxiliary`` is SageMaker's auxiliary channel (a ``vocab.txt`` or its folder): the words
    of the ids, and of raw text. ``stop_words`` drops English stop words from raw text (default
    on, or as the state continued was trained).
    ``publish_every`` (seconds) trains continuously: a checkpoint and a new model version in
    ``output/models/`` every interval, on SIGTERM and at the end (:mod:`.publish`), the
    newest ``keep_versions`` kept.
    """
    publisher = None
    if publish_every is not None:
        if output is None:
            raise ConfigError("publish_every needs an output folder to publish into")
        if fitter is not None:
            raise ConfigError("publish_every trains in one process: not with workers")
        publisher = Publisher(output, publish_every, keep_versions)
    dev = resolve_device(device)
    ckpts = Checkpoints(checkpoint_dir) if checkpoint_dir is not None else None
    state, resumed = _initial_state(algorithm, ckpts, init_state, dev, fitter is None)
    given = dict(hyperparameters or {})
    hp = given if state is None else {**state.hyperparameters, **given}
    algo = load_algorithm(algorithm, hp)
    if state is not None and resumed:
        _check_same_settings(str(ckpts.latest() if ckpts else ""), state, algo, given)
    if state is not None:
        algo.adopt(state)
    recorded = state.inputs.get(TEXT_KEY) if state is not None else None
    words: str | os.PathLike[str] | Vocabulary | None = auxiliary
    if isinstance(train, Source):  # how a source passed in reads, unless told otherwise
        content_type = content_type or train.options.content_type
        label_column = label_column or train.options.label_column
        words = words if words is not None else train.options.vocabulary
        stop_words = False if stop_words is None and not train.options.stop_words else stop_words
    vocabulary, stops = text_settings(words, stop_words, recorded, algo.expected_features())
    options = SourceOptions(
        content_type=content_type,
        label_column=label_column,
        labelled=algo.supervised,
        on_bad_rows=on_bad_rows,
        max_index=algo.expected_features(),
        hash_features=algo.hash_space(),
        vocabulary=vocabulary,
        stop_words=stops,
        bag_of_words=algo.bag_of_words(),
    )
    total_epochs = epochs if epochs is not None else algo.epochs
    if total_epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {total_epochs}")
    if algo.reads_series() and state is None and algo.expected_features() is None:
        # what the hyperparameters leave to the data ("auto") decides the windows' width
        algo = algo.with_series_shape(*series_shape(open_source(train, options)))
    # held-out channels of a forecaster: each series' last steps held out (test windows)
    channels: list[tuple[str, str | Source | None, WindowsMode]] = [
        ("train", train, "train"),
        ("validation", validation, "test"),
        ("test", test, "test"),
    ]
    sources = {
        name: (uri, None if uri is None else open_source(uri, series_options(algo, options, mode)))
        for name, uri, mode in channels
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
    # The progressive loss as it trains, for a dashboard to draw while the run goes on; a
    # resumed run continues its curve.
    curve = None
    if output is not None:
        start = state.trainer.rows if state is not None else 0
        curve = CurveRecorder(Path(output) / CURVES_FILE, start_rows=start, append=resumed)
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
        fitter=fitter,
        curve=curve,
        publisher=publisher,
    )
    # Measuring and sweeping read data while computing, as training does: same thread rule.
    with compute_threads(dev, threads):
        with TrainingProgress(algo.name, progress) as bar, curve or nullcontext():
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
    if out is not None:
        train_source.commit(state)  # the output's state holds the stream's last messages
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


class Fitter(Protocol):
    """Runs a run's epochs somewhere other than this process (the default when none)."""

    def fit(
        self, run: TrainingRun, state: State | None, progress: TrainingProgress
    ) -> tuple[State, float, int]:
        """:meth:`TrainingRun.fit`'s work: the trained state, the seconds and rows it took."""
        ...


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
    #: Where the epochs run, if not in this process (Ray workers: ``streamfit.distributed``).
    fitter: Fitter | None = None
    #: Metrics the fitting adds (a distributed run's workers and restarts).
    extra_metrics: dict[str, float] = field(default_factory=dict)
    #: Where the loop records the training curve (None: nowhere).
    curve: CurveRecorder | None = None
    #: Continuous training: where model versions are published, and how often.
    publisher: Publisher | None = None

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

    def loop(self, progress: TrainingProgress | None, stop: StopFlag) -> Loop:
        """The loop of one attempt at this run: its checkpoints, their cadence, its limit."""
        loop = Loop(
            self.algo,
            checkpoints=self.checkpoints,
            checkpoint_seconds=self.checkpoint_seconds,
            checkpoint_batches=self.checkpoint_batches,
            max_batches=self.max_batches,
            progress=progress,
            stop=stop,
            curve=self.curve,
        )
        loop.publisher = self.publisher
        return loop

    def fit(self, state: State | None, bar: TrainingProgress) -> tuple[State, float, int]:
        """Train until the last epoch; returns the state, the seconds and rows of this run."""
        if self.fitter is not None:
            return self.fitter.fit(self, state, bar)
        algo = self.algo
        started = time.perf_counter()
        with StopFlag() as stop:
            loop = self.loop(bar, stop)
            again = self.train.endless  # a stream reads on at every run
            while again or not self.done(state):
                again, was_done, rows_before = False, self.done(state), loop.rows
                skip = state.position.rows if state is not None else 0
                width = state.n_features if state is not None else algo.expected_features()
                # Named columns are matched to those the state was trained on, if any.
                train = self.train.expecting(state.inputs.get("schema") if state else None)
                train = train.restored(state)  # a stream: after the messages it holds
                loop.source = train
                train.interrupt = stop.signalled
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
                for batch in batches:
                    loop.step(state, batch)
                if stop.requested:  # a stream's read ended by SIGTERM: not the epoch's end
                    loop.interrupt(state)
                if was_done and loop.rows == rows_before:
                    break  # a finished stream with nothing new: the state stands as it was
                record_schema(state, train)  # a resumed state from before schemas
                loop.end_epoch(state, self.stream(self.validation, state))
                if not self.train.rereadable:  # a pipe: one pass over what it delivers
                    break
        assert state is not None
        return state, time.perf_counter() - started, loop.rows

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
        if self.train.options.vocabulary is not None:
            metrics["train:unknown_words"] = float(state.trainer.unknown_words)
        for channel, source in (("validation", self.validation), ("test", self.test)):
            stream = self.stream(source, state)
            if stream is not None:
                for name, value in algo.evaluate(model, stream()).items():
                    metrics[f"{channel}:{name}"] = value
        return model, metrics


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


def _initial_state(
    algorithm: AlgorithmLike,
    ckpts: Checkpoints | None,
    init_state: str | os.PathLike[str] | State | None,
    device: torch.device,
    local: bool = True,
) -> tuple[State | None, bool]:
    """The latest checkpoint (resume: ``True``), else ``init_state`` (incremental), else
    nothing. A distributed run's checkpoint resumes only on workers (``local`` False)."""
    name = algorithm.name if isinstance(algorithm, Algorithm) else get_algorithm(algorithm).name
    if ckpts is not None:
        resumed = ckpts.load_latest(name, device)
        layout = None if resumed is None else resumed.trainer.distributed
        if layout is not None and local:
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
    state.inputs.pop("stream", None)  # a stream's cursor: the group's own position rules
    return state, False
