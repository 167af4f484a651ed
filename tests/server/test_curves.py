"""Reading a job's training curve for the API and the dashboard: while it is written, from a
job without one, and thinned for a chart."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

from streamfit.jobs.manager import JobManager
from streamfit.server.curves import MAX_POINTS, read_curve_file, read_curves
from streamfit.training.curves import CURVES_FILE, CurveRecorder
from tests.server.conftest import python_job


def test_a_curve_is_read_while_its_recorder_writes_it(
    sqlite_manager: JobManager, tmp_path: Path
) -> None:
    [job_id] = sqlite_manager.submit([python_job("train")]).job_ids
    job = dataclasses.replace(sqlite_manager.store.get(job_id), output_uri=str(tmp_path / "out"))
    assert read_curves(job) == []  # not started: no file yet
    with CurveRecorder(tmp_path / "out" / CURVES_FILE, interval=0.0) as curve:
        curve.record(100, 50.0, 0)
        assert [p["rows"] for p in read_curves(job)] == [100]
        with (tmp_path / "out" / CURVES_FILE).open("a") as f:
            f.write('{"rows": 1')  # a line half written
        assert [p["rows"] for p in read_curves(job)] == [100]


def test_a_job_without_an_output_has_no_curve(sqlite_manager: JobManager) -> None:
    [job_id] = sqlite_manager.submit([python_job("new")]).job_ids
    assert read_curves(sqlite_manager.store.get(job_id)) == []


def test_lines_that_are_not_points_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / CURVES_FILE
    path.write_bytes(b'[1, 2]\n\xff\xfe\n{"rows": 5}\n\n"text"\n')
    assert read_curve_file(path) == [{"rows": 5}]
    assert read_curve_file(tmp_path) == []  # a folder, not a file


def test_a_long_curve_is_thinned_evenly_keeping_its_last_point(tmp_path: Path) -> None:
    path = tmp_path / CURVES_FILE
    n = 3 * MAX_POINTS + 7
    path.write_text("".join(json.dumps({"rows": i}) + "\n" for i in range(n)))
    points = read_curve_file(path)
    assert len(points) == MAX_POINTS
    assert points[0] == {"rows": 0} and points[-1] == {"rows": n - 1}
    steps = {b["rows"] - a["rows"] for a, b in itertools.pairwise(points[:-1])}
    assert steps <= {3, 4}
