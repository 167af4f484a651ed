"""Continuous training's published models: every interval a new version, written whole.

``OUTPUT/models/<version>/`` holds the model (``model/``) and the metrics of the window that
led to it (``metrics.json``); ``OUTPUT/models/latest`` is a symbolic link to the newest
version. A version is written into a hidden folder and renamed into place, and ``latest`` is
moved by renaming a new link over it, so a reader sees a whole version or the one before, never
part of one. Versions are numbered on from the highest found (a resumed run continues the
numbering); the newest ``keep`` are kept.

The window's metrics are progressive: each batch's training loss is measured before the batch
is trained on, so ``window:loss`` is the loss on the newest rows of a model that had not seen
them (algorithms without a loss report none).

>>> import tempfile
>>> from streamfit import Batch, get_algorithm
>>> from streamfit.training.loop import Loop, warm_up
>>> import torch
>>> algo = get_algorithm("pca")(num_components=1)
>>> out = Path(tempfile.mkdtemp())
>>> publisher = Publisher(out, every=3600, keep=2)
>>> rows = torch.tensor([[1.0, 2.0], [2.0, 1.0], [3.0, 5.0], [4.0, 3.0]])
>>> state, batches = warm_up(algo, None, iter([Batch(rows, end_position=4)]),
...                          torch.device("cpu"), "rows")
>>> for batch in batches:
...     _ = Loop(algo).step(state, batch)
>>> [publisher.publish(algo, state).name for _ in range(3)]
['000001', '000002', '000003']
>>> sorted(p.name for p in (out / "models").iterdir()), latest_version(out).name
(['000002', '000003', 'latest'], '000003')
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamfit.core.state import State
from streamfit.errors import ConfigError
from streamfit.training.schema import with_input_schema

__all__ = ["LATEST", "MODELS", "Publisher", "latest_version"]

MODELS = "models"
LATEST = "latest"
_VERSION = re.compile(r"^\d{6,}$")


def latest_version(output: str | os.PathLike[str]) -> Path | None:
    """The version folder ``OUTPUT/models/latest`` points to, if any."""
    link = Path(output) / MODELS / LATEST
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


class Publisher:
    """Publishes a version of the model every ``every`` seconds (see the module docstring)."""

    def __init__(
        self,
        output: str | os.PathLike[str],
        every: float,
        keep: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every <= 0:
            raise ConfigError(f"publish_every must be positive, got {every}")
        if keep < 1:
            raise ConfigError(f"keep_versions must be at least 1, got {keep}")
        self.folder = Path(output) / MODELS
        self.every = every
        self.keep = keep
        self.clock = clock
        self._opened = clock()
        self._rows = self._batches = 0
        self._loss = 0.0

    def observe(self, rows: int, loss: float) -> None:
        """Count a batch of ``rows`` trained on, its loss measured before its update."""
        self._rows += rows
        self._batches += 1
        if math.isfinite(loss):
            self._loss += loss

    def due(self) -> bool:
        return self.clock() - self._opened >= self.every

    def _versions(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if _VERSION.match(p.name) and p.is_dir()]
        return sorted(found, key=lambda p: int(p.name))

    def publish(self, algo: Any, state: State) -> Path:
        """Finalize ``state`` into a new version, point ``latest`` at it, prune old ones."""
        versions = self._versions()
        number = int(versions[-1].name) + 1 if versions else 1
        name = f"{number:06d}"
        self.folder.mkdir(parents=True, exist_ok=True)
        model = with_input_schema(algo.finalize(state.clone()), state)
        now = self.clock()
        metrics = {
            "version": number,
            "window:rows": self._rows,
            "window:batches": self._batches,
            "window:seconds": now - self._opened,
            "window:loss": self._loss / self._rows if self._rows and algo.has_loss else None,
            "train:rows": state.trainer.rows,
            "published_at": time.time(),
        }
        tmp = self.folder / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        model.save(tmp / "model")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        final = self.folder / name
        tmp.rename(final)
        link = self.folder / f".{LATEST}.tmp-{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(name)
        link.replace(self.folder / LATEST)  # a rename: readers see the old link or the new
        for old in self._versions()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        self._opened, self._rows, self._batches, self._loss = now, 0, 0, 0.0
        return final
