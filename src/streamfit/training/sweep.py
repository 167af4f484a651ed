"""Many models from one training run: finalize a state once per value of a post-training
hyperparameter (``k=2..40``), and measure all of them in a single read of a channel.

>>> parse_sweep("k=2..5"), parse_sweep("num_components=1,2,5"), parse_sweep("k=2..10:4")
(('k', [2, 3, 4, 5]), ('num_components', [1, 2, 5]), ('k', [2, 6, 10]))
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamfit.core.algorithm import Algorithm
from streamfit.core.batch import Batch
from streamfit.core.model import Model
from streamfit.core.state import State
from streamfit.errors import ConfigError
from streamfit.training.schema import with_input_schema

__all__ = ["SweepPoint", "parse_sweep", "run_sweep", "write_sweep"]

_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?::(\d+))?$")


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_sweep(spec: str) -> tuple[str, list[Any]]:
    """``NAME=A..B[:STEP]`` (an inclusive integer range) or ``NAME=V1,V2,...``."""
    name, sep, values = spec.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ConfigError(f"--sweep expects NAME=A..B or NAME=V1,V2,..., got {spec!r}")
    match = _RANGE.match(values.strip())
    if match:
        lo, hi, step = int(match[1]), int(match[2]), int(match[3] or 1)
        if hi < lo or step < 1:
            raise ConfigError(f"--sweep {spec!r}: an empty range")
        return name.strip(), list(range(lo, hi + 1, step))
    return name.strip(), [_value(v.strip()) for v in values.split(",") if v.strip()]


@dataclass
class SweepPoint:
    """One model of a sweep. ``metrics`` are named by where they come from: ``train:`` what
    the model estimates from the state alone (``model.meta["train_metrics"]``), else the
    channel it was measured on (``test:msd``)."""

    name: str
    value: Any
    model: Model
    metrics: dict[str, float]
    seconds: float  # to finalize this model

    def row(self) -> dict[str, Any]:
        """The model's line of the sweep table (non-finite metrics as ``None``)."""
        row: dict[str, Any] = {self.name: self.value, "finalize_seconds": self.seconds}
        for metric, value in self.metrics.items():
            row[metric] = value if math.isfinite(value) else None
        return row


def run_sweep(
    algorithm: Algorithm,  # type: ignore[type-arg]
    state: State,
    name: str,
    values: list[Any],
    batches: Iterable[Batch] | None = None,
    channel: str = "test",
    **post_training: Any,
) -> list[SweepPoint]:
    """A model per value, all measured in one pass over ``batches`` (if given; the metrics
    are then prefixed by ``channel``)."""
    points = []
    for value in values:
        started = time.perf_counter()
        model = with_input_schema(
            algorithm.finalize(state, **{**post_training, name: value}), state
        )
        seconds = time.perf_counter() - started
        train = model.meta.get("train_metrics", {})
        metrics = {f"train:{metric}": float(v) for metric, v in train.items()}
        points.append(SweepPoint(name, value, model, metrics, seconds))
    if batches is not None:
        evaluators = [algorithm.evaluator(p.model) for p in points]
        live = [(p, e) for p, e in zip(points, evaluators, strict=True) if e is not None]
        for batch in batches:
            if batch.n_rows:
                for _, acc in live:
                    acc.update(batch)
        for point, acc in live:
            point.metrics.update({f"{channel}:{m}": v for m, v in acc.result().items()})
    return points


def write_sweep(points: list[SweepPoint], output: str | os.PathLike[str]) -> Path:
    """``output/sweep/<name>=<value>/`` per model and ``output/sweep.json`` with the table."""
    out = Path(output)
    rows = []
    for point in points:
        point.model.save(out / "sweep" / f"{point.name}={point.value}")
        rows.append(point.row())
    table = out / "sweep.json"
    table.write_text(json.dumps(rows, indent=2) + "\n")
    return table
