"""A job's training curve, as its trainer records it (:mod:`streamfit.training.curves`) in
the job's output folder: read while the job runs, so the last line may be half written.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / CURVES_FILE).write_text('{"rows": 10, "loss": 0.5}\\n{"rows": 2')
>>> read_curve_file(folder / CURVES_FILE)
[{'rows': 10, 'loss': 0.5}]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streamfit.jobs.records import Job
from streamfit.training.curves import CURVES_FILE

__all__ = ["MAX_POINTS", "curve_path", "read_curve_file", "read_curves"]

#: The most points handed to a chart: a longer curve is thinned evenly (its last point kept).
MAX_POINTS = 5000


def curve_path(job: Job) -> Path | None:
    """Where the job's curve is (None: the job has no output folder yet)."""
    return Path(job.output_uri) / CURVES_FILE if job.output_uri else None


def read_curve_file(path: Path) -> list[dict[str, Any]]:
    """The points of a curve file; a line that is not a whole JSON object (the one being
    written) is left out; a missing file is no points."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return []
    points = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            point = json.loads(line)
        except ValueError:
            continue
        if isinstance(point, dict):
            points.append(point)
    if len(points) > MAX_POINTS:
        step = len(points) / MAX_POINTS
        points = [points[int(i * step)] for i in range(MAX_POINTS - 1)] + [points[-1]]
    return points


def read_curves(job: Job) -> list[dict[str, Any]]:
    """The training curve of ``job``: one dict a point (``rows``, ``epoch``, ``loss``,
    ``seconds``, ``rows_per_second``), oldest first; empty for a job that records none (a
    command job, or one not started yet)."""
    path = curve_path(job)
    return read_curve_file(path) if path is not None else []
