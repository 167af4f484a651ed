"""Lost workers and a lost driver: the run goes on from its latest checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

from streamfit import train
from streamfit.datagen import linear_task, write_batches
from streamfit.training.checkpoint import Checkpoints

HP = {
    "predictor_type": "binary_classifier",
    "num_models": 4,
    "mini_batch_size": 200,
    "num_point_for_scaler": 1000,
    "binary_classifier_model_selection_criteria": "loss_function",
}
N_ROWS = 200_000  # 1,000 batches: long enough to be interrupted half way


@pytest.fixture(scope="module")
def long_task(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """Training and validation files, and one process's validation AUC on them."""
    root = tmp_path_factory.mktemp("long")
    task = linear_task(8, "binary", seed=5)
    write_batches(root / "train.parquet", task.blocks(N_ROWS, block=25_000))
    write_batches(root / "validation.parquet", task.blocks(5000, offset=10**9))
    one = train(
        "linear-learner",
        str(root / "train.parquet"),
        validation=str(root / "validation.parquet"),
        hyperparameters=HP,
    )
    return (
        root / "train.parquet",
        root / "validation.parquet",
        one.metrics["validation:roc_auc_score"],
    )


def _when_checkpointed(folder: Path, action: object, timeout: float = 60.0) -> threading.Thread:
    """Run ``action()`` in a thread once ``folder`` holds a checkpoint."""

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while Checkpoints(folder).latest() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        action()  # type: ignore[operator]

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def test_a_killed_worker_restarts_the_run_from_the_checkpoint(
    ray_cluster: ModuleType, long_task: tuple[Path, Path, float], tmp_path: Path
) -> None:
    train_path, validation, auc = long_task
    killed: list[str] = []

    def kill_a_worker() -> None:
        for actor in ray_cluster.util.list_named_actors():
            if actor.startswith("streamfit-") and actor.endswith("-worker-1"):
                ray_cluster.kill(ray_cluster.get_actor(actor))
                killed.append(actor)

    thread = _when_checkpointed(tmp_path / "ckpt", kill_a_worker)
    result = train(
        "linear-learner",
        str(train_path),
        validation=str(validation),
        hyperparameters=HP,
        workers=2,
        checkpoint_dir=tmp_path / "ckpt",
        checkpoint_batches=20,
        progress=False,
    )
    thread.join()
    assert killed, "the run ended before a worker could be killed"
    assert result.metrics["train:restarts"] == 1
    assert result.state.trainer.rows == N_ROWS  # the lost worker's rows: once, not twice
    assert result.metrics["validation:roc_auc_score"] > auc - 0.005


def test_a_killed_driver_resumes_when_the_command_is_rerun(
    ray_cluster: ModuleType, long_task: tuple[Path, Path, float], tmp_path: Path
) -> None:
    train_path, validation, auc = long_task
    # The driver joins the test's Ray, as a job on a cluster would; its actors die with it.
    address = ray_cluster.get_runtime_context().gcs_address
    command = [
        sys.executable, "-m", "streamfit", "train", "linear-learner",
        "--train", str(train_path), "--validation", str(validation),
        "--output", str(tmp_path / "out"), "--checkpoint-dir", str(tmp_path / "ckpt"),
        "--checkpoint-batches", "20", "--workers", "2", "--ray-address", address,
        "--no-progress", "--json",
        *(f"--hp={k}={v}" for k, v in HP.items()),
    ]  # fmt: skip
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _when_checkpointed(tmp_path / "ckpt", lambda: first.send_signal(signal.SIGKILL)).join()
    _, err = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert not (tmp_path / "out" / "metrics.json").exists()
    again = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr[-2000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["train:rows"] == N_ROWS
    assert metrics["train:rows_per_second"] > 0
    assert metrics["validation:roc_auc_score"] > auc - 0.005
