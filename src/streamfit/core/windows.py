"""Windows of time series as batches: what a forecaster (DeepAR) trains on.

A window is a stretch of one series: ``history`` targets that only lags look back on, then
``context`` steps the network reads, then ``prediction`` steps it learns (training, testing)
or forecasts. Each step the network unrolls over (context and prediction) has ``time_features``
calendar values and ``dynamic`` covariates; the series has ``cat`` categories.

Windows travel packed as dense float32 rows of one fixed width (:class:`WindowLayout`), so
that everything that moves rows moves them unchanged: the batcher's read-ahead and device
copies, the replay reservoir, shards for workers. :meth:`WindowLayout.unpack` views a batch
of rows as :class:`Windows` without copying.

>>> layout = WindowLayout(history=2, context=3, prediction=2, time_features=1, cat=1)
>>> layout.length, layout.steps, layout.width
(7, 5, 21)
>>> target = np.arange(7, dtype=np.float32)[None]
>>> rows = layout.pack(target, np.ones((1, 7)), np.zeros((1, 5, 1)), cat=np.array([[3]]))
>>> w = layout.unpack(torch.from_numpy(rows))
>>> w.past_target.tolist(), w.future_target.tolist(), w.cat.tolist()
([[0.0, 1.0, 2.0, 3.0, 4.0]], [[5.0, 6.0]], [[3]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

__all__ = ["SeriesReading", "WindowLayout", "Windows", "WindowsMode"]

#: Which windows a series gives: every ``stride`` steps back from its end (training); its
#: last ``prediction`` steps held out (a test); the ``prediction`` steps after its end
#: (a forecast, their targets unknown).
WindowsMode = Literal["train", "test", "forecast"]


@dataclass(frozen=True)
class WindowLayout:
    """Where each part of a window lies in its packed row:
    ``[target | observed | time features, step-major | dynamic, step-major | cat | extra]``.

    ``extra`` is one number about the window's series: training windows carry the series'
    mean absolute value (the replay reservoir samples by it, as DeepAR's paper samples
    series by scale), test windows its seasonal error (the mean absolute difference of its
    past from ``seasonality`` steps before: MASE's denominator), forecasts 0."""

    history: int
    context: int
    prediction: int
    time_features: int = 0
    cat: int = 0
    dynamic: int = 0

    def __post_init__(self) -> None:
        if self.history < 0 or self.context < 1 or self.prediction < 1:
            raise ValueError(
                f"a window needs context >= 1 and prediction >= 1 (got history {self.history}, "
                f"context {self.context}, prediction {self.prediction})"
            )

    @property
    def length(self) -> int:
        """Targets a window holds: history, context and prediction."""
        return self.history + self.context + self.prediction

    @property
    def steps(self) -> int:
        """Steps the network unrolls over: context and prediction."""
        return self.context + self.prediction

    @property
    def width(self) -> int:
        """Floats in a packed row."""
        per_step = self.time_features + self.dynamic
        return 2 * self.length + self.steps * per_step + self.cat + 1

    def pack(
        self,
        target: np.ndarray,
        observed: np.ndarray,
        time: np.ndarray,
        dynamic: np.ndarray | None = None,
        cat: np.ndarray | None = None,
        extra: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rows of ``n`` windows from their parts: ``target`` and ``observed`` ``(n, length)``
        (a missing target is 0 with observed 0), ``time`` ``(n, steps, time_features)``,
        ``dynamic`` ``(n, steps, dynamic)``, ``cat`` ``(n, cat)``, ``extra`` ``(n,)`` (0 if
        not given)."""
        n = target.shape[0]
        parts = [
            np.asarray(target, np.float32).reshape(n, self.length),
            np.asarray(observed, np.float32).reshape(n, self.length),
            np.asarray(time, np.float32).reshape(n, self.steps * self.time_features),
        ]
        if self.dynamic:
            assert dynamic is not None
            parts.append(np.asarray(dynamic, np.float32).reshape(n, self.steps * self.dynamic))
        if self.cat:
            assert cat is not None
            parts.append(np.asarray(cat, np.float32).reshape(n, self.cat))
        if extra is None:
            parts.append(np.zeros((n, 1), np.float32))
        else:
            parts.append(np.asarray(extra, np.float32).reshape(n, 1))
        return np.concatenate(parts, axis=1) if n else np.zeros((0, self.width), np.float32)

    def unpack(self, rows: torch.Tensor) -> Windows:
        """A batch of packed rows as windows (views of ``rows``; ``cat`` as integers)."""
        if rows.dim() != 2 or rows.shape[1] != self.width:
            raise ValueError(f"window rows have width {self.width}, got {tuple(rows.shape)}")
        n, at = rows.shape[0], 0

        def take(size: int) -> torch.Tensor:
            nonlocal at
            part = rows[:, at : at + size]
            at += size
            return part

        target = take(self.length)
        observed = take(self.length)
        time = take(self.steps * self.time_features).reshape(n, self.steps, self.time_features)
        dynamic = take(self.steps * self.dynamic).reshape(n, self.steps, self.dynamic)
        cat = take(self.cat).long()
        return Windows(self, target, observed, time, dynamic, cat, take(1)[:, 0])


@dataclass(frozen=True)
class Windows:
    """A batch of windows (see :class:`WindowLayout`), each part ``(windows, ...)``."""

    layout: WindowLayout
    target: torch.Tensor  # (n, length): history, context, prediction
    observed: torch.Tensor  # (n, length): 1 where the target is known
    time: torch.Tensor  # (n, steps, time_features)
    dynamic: torch.Tensor  # (n, steps, dynamic)
    cat: torch.Tensor  # (n, cat), int64
    extra: torch.Tensor  # (n,): the series' scale (training) or seasonal error (test)

    @property
    def n(self) -> int:
        return int(self.target.shape[0])

    @property
    def past_target(self) -> torch.Tensor:
        """History and context: what a forecast may look at."""
        return self.target[:, : self.layout.history + self.layout.context]

    @property
    def past_observed(self) -> torch.Tensor:
        return self.observed[:, : self.layout.history + self.layout.context]

    @property
    def future_target(self) -> torch.Tensor:
        """The prediction range: learned in training, held out in a test, unknown in a
        forecast."""
        return self.target[:, self.layout.history + self.layout.context :]

    @property
    def future_observed(self) -> torch.Tensor:
        return self.observed[:, self.layout.history + self.layout.context :]


@dataclass(frozen=True)
class SeriesReading:
    """How a channel of series (SageMaker's JSON Lines ``{"start", "target", "cat",
    "dynamic_feat"}``, or Parquet with those columns) is read into windows: the frequency
    (``time_freq``: its calendar features and the steps' timestamps), the layout, which
    windows, and the bounds records are checked against."""

    freq: str
    layout: WindowLayout
    mode: WindowsMode = "train"
    #: Training windows start every ``stride`` steps back from a series' end.
    stride: int = 1
    #: Each ``cat`` value must be below its cardinality (one per categorical feature).
    cardinality: tuple[int, ...] = ()
    #: The season's length in steps, for a test window's seasonal error.
    seasonality: int = 1
    #: Series that arrive in pieces (long-format rows): the bytes of the table of each
    #: series' recent steps (:mod:`streamfit.data.series_long`).
    table_bytes: int = 64 << 20
