"""A live progress line (rows, rows/s, loss) on a terminal; silent otherwise."""

from __future__ import annotations

import math
import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["TrainingProgress"]


class TrainingProgress:
    """Context manager updated once per batch; redraws at most a few times a second."""

    def __init__(self, description: str, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.description = description
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._start = time.perf_counter()
        self._rows = 0

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                TextColumn("{task.fields[rows]:>12,} rows"),
                TextColumn("{task.fields[rate]:>10,.0f} rows/s"),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                refresh_per_second=4,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.description, total=None, rows=0, rate=0.0, loss="-"
            )
        return self

    def advance(self, rows: int, loss: float | None, epoch: int) -> None:
        self._rows += rows
        if self._progress is None or self._task is None:
            return
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        self._progress.update(
            self._task,
            description=f"{self.description} epoch {epoch + 1}",
            rows=self._rows,
            rate=self._rows / elapsed,
            loss="-" if loss is None or math.isnan(loss) else f"{loss:.4f}",
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
