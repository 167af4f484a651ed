"""Continuous training: model versions published every interval, on SIGTERM and at the end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from streamfit import Batch, get_algorithm
from streamfit.core.registry import load_model
from streamfit.datagen import linear_task, write_batches
from streamfit.errors import ConfigError
from streamfit.training.loop import Loop, warm_up
from streamfit.training.publish import LATEST, MODELS, Publisher, latest_version
from streamfit.training.trainer import train


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def trained_pca() -> tuple[object, object]:
    algo = get_algorithm("pca")(num_components=1)
    rows = torch.tensor([[1.0, 2.0], [2.0, 1.0], [3.0, 5.0], [4.0, 3.0]])
    state, batches = warm_up(
        algo, None, iter([Batch(rows, end_position=4)]), torch.device("cpu"), "t"
    )
    for batch in batches:
        Loop(algo).step(state, batch)
    return algo, state


def test_a_version_is_due_every_interval_and_counts_its_window(tmp_path: Path) -> None:
    clock = Clock()
    publisher = Publisher(tmp_path, every=60, keep=3, clock=clock)
    algo, state = trained_pca()
    publisher.observe(100, 50.0)
    clock.now = 59.9
    assert not publisher.due()
    clock.now = 60.0
    assert publisher.due()
    path = publisher.publish(algo, state)
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["window:rows"] == 100 and metrics["window:seconds"] == 60.0
    assert metrics["version"] == 1
    assert not publisher.due()  # the next window opens at the publication
    assert load_model(path / "model").algorithm == "pca"


def test_latest_moves_by_rename_and_old_versions_are_pruned(tmp_path: Path) -> None:
    algo, state = trained_pca()
    publisher = Publisher(tmp_path, every=1, keep=2)
    for _ in range(4):
        publisher.publish(algo, state)
    folder = tmp_path / MODELS
    assert sorted(p.name for p in folder.iterdir()) == ["000003", "000004", LATEST]
    assert (folder / LATEST).is_symlink() and latest_version(tmp_path) == (
        folder / "000004"
    ).resolve()
    # a resumed run numbers on from the versions it finds
    assert Publisher(tmp_path, every=1).publish(algo, state).name == "000005"


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="positive"):
        Publisher(tmp_path, every=0)
    with pytest.raises(ConfigError, match="at least 1"):
        Publisher(tmp_path, every=1, keep=0)
    with pytest.raises(ConfigError, match="needs an output folder"):
        train("pca", str(tmp_path / "x.csv"), publish_every=1.0)


def test_training_publishes_every_interval_and_the_windows_cover_every_row(
    tmp_path: Path,
) -> None:
    data = tmp_path / "train.parquet"
    write_batches(data, linear_task(4, "binary", seed=3).blocks(3_000))
    hp = {"predictor_type": "binary_classifier", "mini_batch_size": 250}
    train(
        "linear-learner",
        str(data),
        output=tmp_path / "out",
        hyperparameters=hp,
        progress=False,
        publish_every=1e-6,  # every batch: as many versions whatever the speed
        keep_versions=1000,
    )
    versions = sorted((tmp_path / "out" / MODELS).glob("[0-9]*"))
    assert len(versions) >= 3  # several intervals, then the end
    windows = [json.loads((v / "metrics.json").read_text()) for v in versions]
    assert sum(w["window:rows"] for w in windows) == 3_000
    assert windows[-1]["train:rows"] == 3_000
    assert all(w["window:loss"] is None or np.isfinite(w["window:loss"]) for w in windows)
    assert latest_version(tmp_path / "out") == versions[-1].resolve()


@pytest.mark.slow  # a real process (its start is most of it) and a real signal
def test_sigterm_checkpoints_and_publishes_a_version(tmp_path: Path) -> None:
    """A trainer reading a pipe that never ends: SIGTERM publishes, checkpoints, exits 75."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamfit",
            "train",
            "linear-learner",
            "--train",
            "-",
            "--content-type",
            "csv",
            "--output",
            str(out),
            "--checkpoint-dir",
            str(tmp_path / "ck"),
            "--hp",
            "predictor_type=binary_classifier",
            "--hp",
            "mini_batch_size=50",
            "--publish-every",
            "1h",
            "--no-progress",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    stdin = proc.stdin
    stop = threading.Event()

    def produce() -> None:
        rng = np.random.default_rng(0)
        try:
            while not stop.is_set():
                x = rng.normal(size=(50, 3))
                stdin.write(
                    "".join(
                        f"{int(r[0] > 0)},{r[0]:.4f},{r[1]:.4f},{r[2]:.4f}\n" for r in x
                    ).encode()
                )
                stdin.flush()
                time.sleep(0.02)
        except (BrokenPipeError, ValueError):
            pass

    writer = threading.Thread(target=produce)
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while not (out / "curves.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # some batches trained
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        stop.set()
        writer.join()
    assert proc.returncode == 75, err.decode()
    version = latest_version(out)
    assert version is not None and version.name == "000001"
    assert json.loads((version / "metrics.json").read_text())["window:rows"] > 0
