"""The computational model every built-in algorithm shares.

An algorithm is four small operations on a :class:`~streamfit.core.state.State`:

========================  ================================================================
``init_state(n)``         an empty state for ``n`` features; its memory is fixed here
``update(state, batch)``  fold one mini-batch into the state, in place
``merge(a, b)``           combine two workers' states
``finalize(state, **hp)`` a model; cheap, and callable many times with different
                          post-training hyperparameters
========================  ================================================================

and three optional hooks the trainer calls: ``prepare`` (once, with the first
``warmup_rows()`` rows, before they are passed to ``update``), ``end_epoch`` (may ask to stop
early) and ``calibrate`` (sees held-out rows so that ``finalize`` can choose among candidates
without reading data again).

``update``, ``merge``, ``finalize`` and ``adopt`` are templates: they do the work every
algorithm shares (the state is this algorithm's, a batch has the state's width, an empty
batch trains nothing, ``finalize`` takes only post-training names, ``merge`` adds the
counters and the trainer's counts, the hyperparameters in ``fixed_hyperparameters`` agree)
and call the algorithm's own ``_update``, ``_merge``, ``_finalize`` and ``_adopt``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import torch

from streamfit.core.batch import Batch
from streamfit.core.check_parameters import CheckParameters
from streamfit.core.delta import Distribution
from streamfit.core.hyperparameters import Hyperparameters, parse_hyperparameters
from streamfit.core.memory import check_fits
from streamfit.core.model import Model
from streamfit.core.state import State
from streamfit.core.windows import SeriesReading, WindowsMode
from streamfit.errors import ConfigError, DataError, IncompatibleStateError

__all__ = ["Algorithm", "BatchStream", "Evaluator"]

H = TypeVar("H", bound=Hyperparameters)

#: A way to read a channel again: each call returns a fresh iterator over its batches.
BatchStream = Callable[[], Iterable[Batch]]


class Evaluator(Protocol):
    """Metrics of one model, accumulated over batches."""

    def update(self, batch: Batch) -> None: ...

    def result(self) -> dict[str, float]: ...


class Algorithm(ABC, Generic[H]):
    """Base of every built-in algorithm. Constructors store hyperparameters and nothing else."""

    name: ClassVar[str]
    hyperparameters_class: ClassVar[type[Hyperparameters]]
    model_class: ClassVar[type[Model]]
    #: Whether training rows carry a label (CSV: in the first column).
    supervised: ClassVar[bool] = True
    #: Whether ``update`` returns a training loss (else NaN, always): a NaN or infinite loss
    #: then means training diverged.
    has_loss: ClassVar[bool] = True
    #: Hyperparameters that ``finalize`` accepts: changing them needs no data.
    post_training: ClassVar[frozenset[str]] = frozenset()
    #: How far ``merge(a, b)`` may be from one pass over a+b, as a relative difference of the
    #: algorithm's own validation loss (0 for exactly mergeable states).
    merge_tolerance: ClassVar[float] = 0.0
    #: How training on several workers combines them (mode, delta rules, touched tensors).
    distribution: ClassVar[Distribution] = Distribution()
    #: Hyperparameters whose values the state's shape or meaning fixes: ``adopt`` refuses to
    #: continue a state, and ``merge`` to combine states, under other values of them (as
    #: :meth:`fixed_settings` resolves them).
    fixed_hyperparameters: ClassVar[frozenset[str]] = frozenset()
    #: The hyperparameters that make the state larger, named when it cannot fit in memory.
    size_hyperparameters: ClassVar[tuple[str, ...]] = ()
    #: How the shared checks (:mod:`streamfit.checks`) train and judge it, on small data.
    check_parameters: ClassVar[CheckParameters]

    hp: H

    def __init__(self, hyperparameters: Mapping[str, Any] | None = None, **overrides: Any):
        raw = {**(hyperparameters or {}), **overrides}
        self.hp = parse_hyperparameters(
            self.hyperparameters_class,
            raw,
            algorithm=self.name,
        )  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hp!r})"

    # -- the four operations: shared work, then the algorithm's hook ------------------------

    @abstractmethod
    def init_state(self, n_features: int, device: torch.device | str = "cpu") -> State:
        """An empty state for rows of ``n_features`` features (start from :meth:`new_state`)."""

    @abstractmethod
    def state_bytes(self, n_features: int) -> int:
        """About how many bytes ``init_state(n_features)`` allocates (within a few percent):
        checked against the memory available before anything is allocated."""

    def update(self, state: State, batch: Batch) -> float:
        """Fold ``batch`` into ``state`` in place; returns the batch's summed training loss
        (before the update, i.e. progressive validation), or NaN if it has none or no rows."""
        self.check_state(state)
        if batch.n_features != state.n_features:
            raise DataError(
                f"rows of {batch.n_features} features, the state has {state.n_features}",
                source=self.name,
            )
        if not batch.n_rows:
            return math.nan
        return self._update(state, batch)

    def merge(self, a: State, b: State) -> State:
        """A state summarising the data of both ``a`` and ``b``; their counters, and the
        trainer's counts, add up."""
        for state in (a, b):
            self.check_state(state)
            self._check_fixed(state, merging=True)
        if a.n_features != b.n_features:
            raise IncompatibleStateError(
                f"{self.name}: cannot merge states of {a.n_features} and {b.n_features} features"
            )
        out = self._merge(a, b)
        out.counters = {
            name: a.counters.get(name, 0) + b.counters.get(name, 0)
            for name in a.counters | b.counters
        }
        out.trainer = a.trainer.merged(b.trainer)
        return out

    def finalize(self, state: State, **post_training: Any) -> Model:
        """A model from ``state``; ``post_training`` overrides names in ``post_training``."""
        self.check_state(state)
        self.check_post_training(post_training)
        return self._finalize(state, **post_training)

    def adopt(self, state: State) -> None:
        """Take over ``state`` (resumed or incremental) under this algorithm's hyperparameters:
        refused if they change what the state fixes (its width, ``fixed_hyperparameters``)."""
        self.check_state(state)
        self._check_fixed(state)  # first: a fixed setting named is clearer than a width
        width = self.expected_features()
        if width is not None and width != state.n_features:
            raise IncompatibleStateError(
                f"{self.name}: feature_dim={width} but the state has {state.n_features} features"
            )
        self._adopt(state)
        state.hyperparameters = self.hp.as_dict()

    @abstractmethod
    def _update(self, state: State, batch: Batch) -> float:
        """:meth:`update` of a batch with rows, of the state's width."""

    @abstractmethod
    def _merge(self, a: State, b: State) -> State:
        """:meth:`merge` of two compatible states (the counters are summed afterwards)."""

    @abstractmethod
    def _finalize(self, state: State, **post_training: Any) -> Model:
        """:meth:`finalize` with post-training names only."""

    def _adopt(self, state: State) -> None:
        """Apply to ``state`` what may change between runs (learning rates given now), and
        refuse what it fixes beyond ``fixed_hyperparameters``."""

    def fixed_settings(self, hp: H) -> dict[str, Any]:
        """What ``fixed_hyperparameters`` fix in ``hp``, by name: their values, or what they
        resolve to where several values build the same state (``"auto"``, a horizon that may
        change while on/off may not): override to resolve them."""
        return {name: getattr(hp, name) for name in sorted(self.fixed_hyperparameters)}

    def _check_fixed(self, state: State, *, merging: bool = False) -> None:
        """Refuse (:class:`IncompatibleStateError`) a state trained under other values of
        ``fixed_hyperparameters`` than this algorithm's, naming them."""
        if not self.fixed_hyperparameters:
            return
        parsed = parse_hyperparameters(
            self.hyperparameters_class, state.hyperparameters, algorithm=self.name
        )
        theirs = self.fixed_settings(parsed)  # type: ignore[arg-type]
        ours = self.fixed_settings(self.hp)
        differ = [name for name in ours if theirs.get(name) != ours[name]]
        if not differ:
            return
        # Compared resolved, named as written: "auto" may mean what the state was built with.
        was = ", ".join(f"{n}={state.hyperparameters.get(n)!r}" for n in differ)
        now = ", ".join(f"{n}={self.hp.as_dict().get(n)!r}" for n in differ)
        if merging:
            message = f"a state trained with {was} cannot be merged under {now}"
        else:
            message = f"the state was trained with {was}; it cannot continue with {now}"
        raise IncompatibleStateError(f"{self.name}: {message}")

    # -- trainer hooks with do-nothing defaults --------------------------------------------

    @property
    def mini_batch_size(self) -> int:
        return int(getattr(self.hp, "mini_batch_size", 1000))

    @property
    def epochs(self) -> int:
        return int(getattr(self.hp, "epochs", 1))

    @property
    def seed(self) -> int:
        return int(getattr(self.hp, "seed", 0))

    def expected_features(self) -> int | None:
        """The feature width the hyperparameters fix (``feature_dim``), if any."""
        value = getattr(self.hp, "feature_dim", None)
        return value if isinstance(value, int) else None

    def hash_space(self) -> int | None:
        """Fold feature ids into ``[0, n)`` while reading (the hashing trick), if set."""
        return None

    def bag_of_words(self) -> bool:
        """Rows are bags of words (a topic model's counts): reading its channels, a negative
        count or an empty document is a bad row. Raw text without a vocabulary is hashed into
        :meth:`expected_features` columns whatever this says."""
        return False

    def reads_series(self) -> bool:
        """Its channels are time series read as windows (:mod:`streamfit.core.windows`),
        each channel as :meth:`series_reading` says, rather than rows."""
        return False

    def series_reading(self, mode: WindowsMode) -> SeriesReading | None:
        """How a channel of series is read: training windows (``"train"``), each series'
        last steps held out (``"test"``: validation and test channels), or forecasts."""
        return None

    def with_series_shape(self, num_cat: int, num_dynamic: int) -> Algorithm[H]:
        """This algorithm with what its hyperparameters leave to the data ("auto") made
        concrete for series of ``num_cat`` categories and ``num_dynamic`` covariates."""
        return self

    def touched_rows(self, batch: Batch) -> torch.Tensor | None:
        """The rows of ``distribution.touched_tensors`` that ``update(state, batch)`` may
        change, repeats allowed (a superset is fine, a row missing is a wrong delta), or None:
        any row."""
        return None

    def warmup_rows(self) -> int:
        """How many leading rows ``prepare`` wants to see before training starts."""
        return 0

    def prepare(self, state: State, batches: Sequence[Batch]) -> None:
        """Look at the first rows before any ``update`` (scalers, initial centres)."""

    def for_worker(self, state: State) -> None:
        """Fit ``state`` for a worker of a distributed run, before it trains its shard:
        drop what only a run in one process can use (rows kept for the end of the read)."""

    def end_epoch(self, state: State, validation: BatchStream | None) -> bool:
        """Called after each epoch; returns True to stop early."""
        return False

    def calibrate(self, state: State, batches: Iterable[Batch]) -> None:
        """Record what ``finalize`` needs from held-out rows (scores per candidate)."""

    def evaluator(self, model: Model) -> Evaluator | None:
        """An accumulator of ``model``'s metrics, fed a batch at a time (None: no metrics).
        Push-style, so that one read of a channel can measure many models (sweeps)."""
        return None

    def evaluate(self, model: Model, batches: Iterable[Batch]) -> dict[str, float]:
        """Metrics of ``model`` on ``batches``, under SageMaker's metric names."""
        acc = self.evaluator(model)
        if acc is None:
            return {}
        for batch in batches:
            if batch.n_rows:
                acc.update(batch)
        return acc.result()

    # -- helpers -------------------------------------------------------------------------

    def check_memory(self, n_features: int, extra_bytes: int = 0) -> None:
        """Refuse (:class:`ConfigError`) a state of ``n_features`` features, plus
        ``extra_bytes`` of buffers, that the memory available cannot hold."""
        check_fits(
            f"{self.name}: a state of {n_features:,} features",
            self.state_bytes(n_features) + extra_bytes,
            hint="lower feature_dim (or the data's width) or the hyperparameters that multiply "
            "it (" + ", ".join(self.size_hyperparameters) + ")",
        )

    def new_state(self, n_features: int) -> State:
        """A state carrying this algorithm's name, hyperparameters and a seeded generator;
        refused if its tensors cannot fit in memory or ``feature_dim`` says another width."""
        if n_features <= 0:
            raise ConfigError(f"{self.name}: need at least one feature, got {n_features}")
        width = self.expected_features()
        if width is not None and width != n_features:
            raise ConfigError(
                f"{self.name}: feature_dim={width} but the data has {n_features} features"
            )
        self.check_memory(n_features)
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        return State(
            algorithm=self.name,
            hyperparameters=self.hp.as_dict(),
            n_features=n_features,
            generator=generator,
        )

    def check_state(self, state: State) -> None:
        if state.algorithm != self.name:
            raise IncompatibleStateError(
                f"state of algorithm {state.algorithm!r} given to {self.name!r}"
            )

    def check_post_training(self, post: Mapping[str, Any]) -> None:
        unknown = sorted(set(post) - self.post_training)
        if unknown:
            allowed = ", ".join(sorted(self.post_training)) or "none"
            raise ConfigError(
                f"{self.name}: {', '.join(map(repr, unknown))} cannot change after training "
                f"(post-training hyperparameters: {allowed})"
            )
