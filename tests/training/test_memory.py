"""Sizes that cannot fit are refused up front, naming the bytes, not found by the allocator."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamfit import ConfigError, train
from tests.conftest import BinaryFiles


def test_a_huge_feature_dim_is_refused_before_reading_data(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("1,abc\n")  # never read: the size is known from the hyperparameters
    started = time.monotonic()
    done = subprocess.run(
        [
            *(sys.executable, "-m", "streamfit", "train", "factorization-machines"),
            *("--train", str(data), "--output", str(tmp_path / "out"), "--no-progress"),
            *("--hp", "feature_dim=1000000000000", "--hp", "num_factors=8"),
            *("--hp", "predictor_type=regressor"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "a state of 1,000,000,000,000 features needs" in done.stderr
    assert "TB but only" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 60


def test_rows_held_for_warm_up_must_fit(binary_files: BinaryFiles) -> None:
    hp = {"predictor_type": "binary_classifier", "num_point_for_scaler": 10**12}
    with pytest.raises(ConfigError, match=r"needs .* but only"):
        train("linear-learner", str(binary_files.train), hyperparameters=hp)
