"""Training that produces a NaN or infinite loss or state stops with a clear error (exit 5,
an ``algorithm`` failure for the job manager) and keeps its last finite checkpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from streamfit import State, TrainingDiverged, train
from streamfit.datagen import linear_task, write_batches
from streamfit.training.checkpoint import Checkpoints


def _huge_values(path: Path, n: int = 4000, scale: float = 1e18) -> Path:
    """Rows whose features are near 1e18: finite float32, but no model can train on them
    unscaled."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)) * scale
    y = (x[:, 0] > 0).astype(int)
    lines = [
        ",".join([str(int(label)), *(f"{v:.6g}" for v in row)])
        for label, row in zip(y, x, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_factorization_machines_on_huge_values_stop_with_a_clear_error(tmp_path: Path) -> None:
    data = _huge_values(tmp_path / "huge.csv")
    hp = {"feature_dim": 4, "num_factors": 4, "predictor_type": "binary_classifier"}
    with pytest.raises(TrainingDiverged, match="too large to train on as they are"):
        train("factorization-machines", str(data), hyperparameters=hp, output=tmp_path / "out")
    assert not (tmp_path / "out" / "model").exists()


def test_a_diverging_learning_rate_keeps_the_last_finite_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "train.parquet"
    task = linear_task(8, "regression", seed=1)
    write_batches(data, task.blocks(20_000, block=1000))
    ckpt = tmp_path / "ckpt"
    hp = {
        "predictor_type": "regressor",
        "num_models": 1,
        "optimizer": "sgd",
        "momentum": 0.0,
        "learning_rate": 1e12,
        "normalize_data": False,
        "normalize_label": False,
        "use_lr_scheduler": False,
        "mini_batch_size": 100,
    }
    with pytest.raises(TrainingDiverged):
        train(
            "linear-learner",
            str(data),
            hyperparameters=hp,
            checkpoint_dir=ckpt,
            checkpoint_batches=1,
        )
    latest = Checkpoints(ckpt).latest()
    assert latest is not None
    state = State.load(latest)
    assert all(t.isfinite().all() for t in state.tensors.values() if t.is_floating_point())


def test_the_cli_exits_5_and_names_the_problem(tmp_path: Path) -> None:
    data = _huge_values(tmp_path / "huge.csv")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "streamfit", "train", "factorization-machines"),
            *("--train", str(data), "--output", str(tmp_path / "out"), "--no-progress"),
            *("--hp", "feature_dim=4", "--hp", "num_factors=4"),
            *("--hp", "predictor_type=binary_classifier"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 5, done.stderr
    assert done.stderr.startswith("training diverged: factorization-machines: the ")
    assert "Traceback" not in done.stderr


def test_checkpoints_refuse_a_non_finite_state(tmp_path: Path) -> None:
    state = State("linear-learner", {}, 2, tensors={"weight": torch.tensor([1.0, float("nan")])})
    with pytest.raises(TrainingDiverged, match="weight became NaN or infinite"):
        Checkpoints(tmp_path).save(state)
    assert list(tmp_path.iterdir()) == []
