"""The memory check's child process: trains on generated rows and prints its peak RSS.

``python -m streamfit.checks.memory_child SPEC`` with SPEC the JSON that
:func:`streamfit.checks.memory.check_peak_memory_flat` writes.
"""

from __future__ import annotations

import functools
import importlib
import json
import resource
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from streamfit.checks.data import build_task
from streamfit.core.check_parameters import GeneratedData
from streamfit.data.checks import RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.source import Source, SourceOptions
from streamfit.training.trainer import train


class _Generated(Source):
    """Rows made while training reads them: no file, so that only training holds memory."""

    reads_series = True  # a forecaster's task makes packed windows, what a reader would

    def __init__(self, blocks: Callable[[], Iterator[pa.RecordBatch]]) -> None:
        super().__init__("generated", SourceOptions())
        self.blocks = blocks

    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        pos = 0
        for batch in self.blocks():
            yield Chunk(batch, np.arange(pos, pos + batch.num_rows), pos + batch.num_rows)
            pos += batch.num_rows


def _measure(spec: dict[str, Any]) -> dict[str, float]:
    module, _, qualname = spec["algorithm"].partition(":")
    algorithm: Any = importlib.import_module(module)
    for part in qualname.split("."):
        algorithm = getattr(algorithm, part)
    task_name, args = spec["data"]
    task = build_task(GeneratedData(task_name, tuple(args), spec["options"]))
    blocks = functools.partial(task.blocks, spec["rows"], block=20_000)
    result = train(
        algorithm(spec["hyperparameters"]),
        _Generated(blocks),
        progress=False,
        device=spec["device"],
    )
    return {
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": result.state.trainer.rows,
    }


if __name__ == "__main__":
    print(json.dumps(_measure(json.loads(sys.argv[1]))))
