"""The training curve: recorded while training runs, readable mid-run, bounded in size,
continued by a resumed run and replaced by a fresh one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from streamfit import train
from streamfit.errors import TrainingInterrupted
from streamfit.training.curves import CURVES_FILE, CurveRecorder
from tests.conftest import BinaryFiles

HP = {"predictor_type": "binary_classifier", "num_models": 2, "mini_batch_size": 500}


def _points(path: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_each_point_is_on_disk_as_soon_as_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "out" / CURVES_FILE
    clock = _Clock()
    with CurveRecorder(path, interval=1.0, clock=clock) as curve:
        curve.record(10, 10 * 0.5, 0)
        assert path.read_text() == ""  # not due yet
        clock.t = 1.0
        curve.record(30, 30 * 0.1, 0)
        (point,) = _points(path)  # read by another handle, while the run goes on
        assert point == {
            "rows": 40,
            "epoch": 1,
            "loss": pytest.approx(0.2),
            "seconds": 1.0,
            "rows_per_second": 40.0,
        }
        clock.t = 1.5
        curve.record(5, math.nan, 1)  # a batch without a loss
    last = _points(path)[-1]
    assert (last["rows"], last["epoch"], last["loss"]) == (45, 2, None)


def test_a_week_long_run_writes_a_bounded_curve(tmp_path: Path) -> None:
    path = tmp_path / CURVES_FILE
    clock = _Clock()
    calls = 0
    with CurveRecorder(path, interval=1.0, budget=1000, clock=clock) as curve:
        while clock.t < 7 * 86_400:
            clock.t += 5.0
            curve.record(100, 10.0, 0)
            calls += 1
    points = _points(path)
    assert 3000 < len(points) < 10_000 < calls
    assert path.stat().st_size < 1_500_000
    assert points[-1]["rows"] == 100 * calls  # every row counted, however thinned


def test_training_records_its_curve_and_a_resumed_run_continues_it(
    binary_files: BinaryFiles, tmp_path: Path
) -> None:
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    with pytest.raises(TrainingInterrupted):
        train(
            "linear-learner",
            str(binary_files.train),
            hyperparameters=HP,
            output=out,
            checkpoint_dir=ckpt,
            max_batches=4,
            epochs=1,
        )
    first = _points(out / CURVES_FILE)
    assert first[-1]["rows"] == 4 * 500
    assert all(math.isfinite(p["loss"]) for p in first)
    train(
        "linear-learner",
        str(binary_files.train),
        hyperparameters=HP,
        output=out,
        checkpoint_dir=ckpt,
        epochs=1,
    )
    resumed = _points(out / CURVES_FILE)
    assert resumed[: len(first)] == first
    assert resumed[-1]["rows"] == binary_files.n_train
    rows = [p["rows"] for p in resumed]
    assert rows == sorted(rows)
    # a fresh run into the same output starts a new curve
    train("linear-learner", str(binary_files.train), hyperparameters=HP, output=out, epochs=1)
    fresh = [p["rows"] for p in _points(out / CURVES_FILE)]
    assert fresh == sorted(fresh) and fresh[-1] == binary_files.n_train  # not appended
