"""The exactly-once check both message streams share: a real ``streamfit train`` killed with
SIGKILL at random moments while a producer writes, restarted from its checkpoints, against an
uninterrupted run over the same messages."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from streamfit.core.state import State
from streamfit.training.checkpoint import Checkpoints


def train_command(uri: str, out: Path, checkpoints: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamfit",
        "train",
        "linear-learner",
        "--train",
        uri,
        "--output",
        str(out),
        "--checkpoint-dir",
        str(checkpoints),
        "--checkpoint-batches",
        "2",
        "--hp",
        "predictor_type=binary_classifier",
        "--hp",
        "mini_batch_size=250",
        "--no-progress",
        "--json",
    ]


def _wait_for_new_checkpoint(
    folder: Path, before: Path | None, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if Checkpoints(folder).latest() not in (None, before):
            return
        time.sleep(0.02)


def exactly_once_after_kills(
    tmp_path: Path,
    uri: Callable[[str], str],
    producer: Callable[[], None],
    *,
    n_rows: int,
    seed: int,
    kills: int = 1,
) -> None:
    """``uri(group)`` names the stream read by a group (a fresh reader each call)."""
    rng = random.Random(seed)
    writing = threading.Thread(target=producer)
    writing.start()
    out, ckpts = tmp_path / "killed", tmp_path / "killed-checkpoints"
    killed = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            train_command(uri("killed"), out, ckpts),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _wait_for_new_checkpoint(ckpts, Checkpoints(ckpts).latest(), proc)
        time.sleep(rng.uniform(0.0, 0.4))  # a random moment after a checkpoint
        if proc.poll() is None:
            proc.kill()
            killed += 1
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -9), err.decode()
    writing.join()
    assert killed, "every run ended before it could be killed: make the stream longer"
    for group, folder in (("killed", out), ("reference", tmp_path / "reference")):
        done = subprocess.run(
            train_command(uri(group), folder, tmp_path / f"{group}-checkpoints"),
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
    resumed = State.load(out / "state")
    reference = State.load(tmp_path / "reference" / "state")
    assert resumed.trainer.rows == reference.trainer.rows == n_rows
    assert resumed.tensors.keys() == reference.tensors.keys()
    for name, tensor in reference.tensors.items():
        assert torch.equal(resumed.tensors[name], tensor), name
