"""The training curve: the progressive loss (each row's loss before the model learned from it)
as training reads, recorded to ``OUTPUT/curves.jsonl`` while it runs, so that a dashboard can
draw a running job's curve from the file.

One JSON object a line: ``rows`` (trained so far, earlier runs of a resumed state included),
``epoch`` (1-based), ``loss`` (the mean progressive loss per row since the previous point; null
without a loss), ``seconds`` (wall time since this run began) and ``rows_per_second`` (since the
previous point). A point is written at most every ``interval`` seconds, and that interval
doubles after every ``budget`` points, so the file grows with the logarithm of the run's length
(about 10,000 points, a megabyte, for a week); each line is flushed when written.

>>> import json, tempfile
>>> path = Path(tempfile.mkdtemp()) / "curves.jsonl"
>>> with CurveRecorder(path, interval=0.0) as curve:
...     curve.record(100, 2.0 * 100, 0)
...     curve.record(50, 0.5 * 50, 1)
>>> [(p["rows"], p["epoch"], p["loss"]) for p in map(json.loads, path.read_text().splitlines())]
[(100, 1, 2.0), (150, 2, 0.5)]
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["CURVES_FILE", "CurveRecorder"]

#: The curve's file name in a training output folder.
CURVES_FILE = "curves.jsonl"


class CurveRecorder:
    """Appends the points of one run's curve to ``path`` (created with its folder; a fresh
    run, ``append=False``, replaces the curve of an earlier one; a resumed run continues it
    from ``start_rows``)."""

    def __init__(
        self,
        path: Path,
        *,
        interval: float = 1.0,
        budget: int = 1000,
        start_rows: int = 0,
        append: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.path = path
        self.interval = interval
        self.budget = budget
        self.rows = start_rows
        self.append = append
        self._clock = clock
        self._file: IO[str] | None = None
        self._start = self._last = clock()
        self._written = 0
        self._pending_rows = 0
        self._pending_loss = 0.0
        self._loss_rows = 0
        self._epoch = 0

    def __enter__(self) -> CurveRecorder:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a" if self.append else "w", encoding="utf-8")
        self._start = self._last = self._clock()
        return self

    def record(self, rows: int, loss_sum: float, epoch: int) -> None:
        """``rows`` more rows trained in (0-based) ``epoch``, whose progressive losses sum to
        ``loss_sum`` (NaN: none); a point is written if one is due."""
        self.rows += rows
        self._pending_rows += rows
        if not math.isnan(loss_sum):
            self._pending_loss += loss_sum
            self._loss_rows += rows
        self._epoch = epoch
        now = self._clock()
        if now - self._last >= self.interval:
            self._write(now)

    def _write(self, now: float) -> None:
        if self._file is None or not self._pending_rows:
            return
        elapsed = now - self._last
        loss = self._pending_loss / self._loss_rows if self._loss_rows else None
        point: dict[str, Any] = {
            "rows": self.rows,
            "epoch": self._epoch + 1,
            "loss": loss if loss is not None and math.isfinite(loss) else None,
            "seconds": round(now - self._start, 3),
            "rows_per_second": round(self._pending_rows / elapsed, 1) if elapsed > 0 else None,
        }
        self._file.write(json.dumps(point, separators=(",", ":")) + "\n")
        self._file.flush()  # a reader follows the file while the run goes on
        self._last = now
        self._pending_rows = self._loss_rows = 0
        self._pending_loss = 0.0
        self._written += 1
        if self._written % self.budget == 0:
            self.interval = max(self.interval * 2, 1e-3)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._write(self._clock())  # the last rows, even when stopped or failed
            self._file.close()
            self._file = None
