"""Checkpoints: numbered state folders written atomically, the newest one resumed.

A checkpoint folder appears complete or not at all (``State.save`` writes a temporary folder
and renames it), so a crash while saving leaves the previous checkpoint as the latest. A state
with NaN or infinite values is never saved: the latest checkpoint stays the last finite one.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from streamfit.core.state import State
from streamfit.errors import TrainingDiverged

__all__ = ["Checkpoints", "check_finite"]

_NAME = re.compile(r"^checkpoint-(\d{9})$")


#: Elements checked at a time: a whole replay reservoir checked at once made a temporary of
#: its size (a bool per value, and more), which raised a forecaster's peak memory by 110 MB.
_FINITE_CHUNK = 1 << 20


def finite(t: torch.Tensor) -> bool:
    """Whether every value of ``t`` is finite, checked a chunk at a time.

    >>> x = torch.zeros(3 * _FINITE_CHUNK)
    >>> finite(x), finite(x.index_fill(0, torch.tensor([2 * _FINITE_CHUNK + 5]), float("nan")))
    (True, False)
    >>> view = torch.zeros(_FINITE_CHUNK, 3, 2)[:, 1]  # checked as it is, never copied whole
    >>> clean = finite(view)
    >>> view[-1, 0] = float("inf")
    >>> infinite = finite(view)
    >>> view[-1, 0] = float("nan")
    >>> clean, infinite, finite(view), finite(torch.zeros(0, 3))
    (True, False, False, True)
    """
    if not t.is_floating_point() or not t.numel():
        return True
    if t.dim() > 1 and not t.is_contiguous():
        # A view (Linear Learner's weights in its packed table): reshape would copy it all.
        parts = torch.split(t, max(1, _FINITE_CHUNK // max(1, t[0].numel())))
    else:
        parts = torch.split(t.reshape(-1), _FINITE_CHUNK)
    # min and max carry any NaN or infinity: a tenth of isfinite().all()'s time, no temporary.
    return all(bool(torch.isfinite(torch.stack(torch.aminmax(part))).all()) for part in parts)


def check_finite(name: str, state: State) -> None:
    """Refuse a state with NaN or infinite values (:class:`TrainingDiverged`), naming them."""
    bad = [k for k, t in state.tensors.items() if not finite(t)]
    if bad:
        raise TrainingDiverged(
            f"{name}: the state's {', '.join(bad)} became NaN or infinite by row "
            f"{state.position.rows:,} (epoch {state.position.epoch + 1}): the settings make "
            "training diverge or the features are too large to train on as they are; the "
            "last checkpoint with finite values is kept"
        )


class Checkpoints:
    """The checkpoints in ``folder``; keeps the newest ``keep``."""

    def __init__(self, folder: str | os.PathLike[str], keep: int = 2) -> None:
        self.folder = Path(folder)
        self.keep = keep
        #: Stamped on every state saved (``State.inputs``): what the run trains on.
        self.inputs: dict[str, Any] = {}

    def _numbered(self) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        found = []
        for p in self.folder.iterdir():
            match = _NAME.match(p.name)
            if match and p.is_dir():
                found.append((int(match.group(1)), p))
        return sorted(found)

    def latest(self) -> Path | None:
        numbered = self._numbered()
        return numbered[-1][1] if numbered else None

    def load_latest(self, algorithm: str, device: torch.device | str = "cpu") -> State | None:
        """The newest checkpoint's state; a corrupt one is an error, never silently skipped."""
        latest = self.latest()
        return None if latest is None else State.load(latest, algorithm, device)

    def save(self, state: State) -> Path:
        check_finite(state.algorithm, state)
        state.inputs.update(self.inputs)
        numbered = self._numbered()
        seq = numbered[-1][0] + 1 if numbered else 1
        path = state.save(self.folder / f"checkpoint-{seq:09d}")
        for _, old in self._numbered()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for leftover in self.folder.glob(".checkpoint-*.tmp-*"):  # from a crash while saving
            shutil.rmtree(leftover, ignore_errors=True)
        return path
