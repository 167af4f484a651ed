"""The trainer: outputs, checkpoints, resume after SIGTERM and kill -9, incremental training."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from streamfit import CorruptStateError, State, TrainingInterrupted, load_model, train
from streamfit.datagen import linear_task, write_batches
from tests.conftest import BinaryFiles

HP = {
    "predictor_type": "binary_classifier",
    "num_models": 4,
    "mini_batch_size": 500,
    "num_point_for_scaler": 1000,
}


def _same_tensors(a: State, b: State) -> None:
    assert a.tensors.keys() == b.tensors.keys()
    for key in a.tensors:
        assert torch.equal(a.tensors[key], b.tensors[key]), key


def test_output_folder_holds_model_state_and_metrics(
    binary_files: BinaryFiles, tmp_path: Path
) -> None:
    result = train(
        "linear-learner",
        str(binary_files.train),
        validation=str(binary_files.validation),
        test=str(binary_files.test),
        hyperparameters=HP,
        output=tmp_path,
        progress=False,
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["train:rows"] == binary_files.n_train
    assert metrics["train:bad_rows"] == 0
    assert metrics["train:rows_per_second"] > 0
    for channel in ("validation", "test"):
        assert 0.5 < metrics[f"{channel}:roc_auc_score"] <= 1
        assert metrics[f"{channel}:objective_loss"] > 0
    assert load_model(tmp_path / "model").meta["predictor_type"] == "binary_classifier"
    assert State.load(tmp_path / "state").trainer.rows == binary_files.n_train
    assert result.model.meta["selection"]["source"] == "validation"


def test_incremental_training_reads_only_the_new_data(binary_files: BinaryFiles) -> None:
    first = train("linear-learner", str(binary_files.shard_a), hyperparameters=HP, progress=False)
    second = train(
        "linear-learner",
        str(binary_files.shard_b),
        init_state=first.state,
        progress=False,
    )
    half = binary_files.n_train // 2
    assert second.metrics["train:rows"] == 2 * half  # counters carry over
    assert second.state.trainer.batches == first.state.trainer.batches * 2
    # One step a batch read: the first run's small read also trained epochs over its kept
    # rows at its end; an incremental run, from a state that keeps none, is one pass.
    assert "reservoir_epochs" in first.state.meta
    fresh = second.state.trainer.batches - first.state.trainer.batches
    assert second.state.meta["step"] == first.state.meta["step"] + fresh
    # the scaler came from the first job's data and was not refitted
    torch.testing.assert_close(second.state.tensors["x_shift"], first.state.tensors["x_shift"])


def test_incremental_training_from_a_state_folder_on_the_cli_contract(
    binary_files: BinaryFiles, tmp_path: Path
) -> None:
    train(
        "linear-learner",
        str(binary_files.shard_a),
        hyperparameters=HP,
        output=tmp_path / "a",
        progress=False,
    )
    both = train(
        "linear-learner",
        str(binary_files.shard_b),
        init_state=tmp_path / "a" / "state",
        hyperparameters={"learning_rate": 0.01},
        progress=False,
    )
    assert both.state.hyperparameters["learning_rate"] == 0.01
    assert both.state.hyperparameters["num_models"] == 4


def test_epochs_read_the_data_again_and_can_stop_early(binary_files: BinaryFiles) -> None:
    result = train(
        "linear-learner",
        str(binary_files.train),
        hyperparameters={**HP, "early_stopping_patience": 1, "early_stopping_tolerance": 0.5},
        epochs=10,
        progress=False,
    )
    assert result.state.trainer.stopped_early is True
    assert result.metrics["train:epochs"] == 2
    assert len(result.state.meta["loss_history"]) == 2


def test_a_corrupt_checkpoint_is_a_clear_error(binary_files: BinaryFiles, tmp_path: Path) -> None:
    with pytest.raises(TrainingInterrupted):
        train(
            "linear-learner",
            str(binary_files.train),
            hyperparameters=HP,
            checkpoint_dir=tmp_path,
            max_batches=3,
            progress=False,
        )
    (checkpoint,) = tmp_path.glob("checkpoint-*")
    tensors = checkpoint / "state.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-100])
    with pytest.raises(CorruptStateError, match=r"state\.safetensors"):
        train(
            "linear-learner",
            str(binary_files.train),
            hyperparameters=HP,
            checkpoint_dir=tmp_path,
            progress=False,
        )


def test_bad_rows_are_skipped_counted_and_not_recounted_on_resume(tmp_path: Path) -> None:
    lines = []
    task = linear_task(3, seed=1)
    for batch in task.blocks(6000):
        labels = batch.column("label").to_numpy()
        x = batch.column("features").flatten().to_numpy().reshape(-1, 3)
        lines += [f"{y:g},{a:g},{b:g},{c:g}" for y, (a, b, c) in zip(labels, x, strict=True)]
    bad_lines = {10, 999, 1000, 2500, 5999}
    for i in bad_lines:
        lines[i] = "1,oops,2,3" if i % 2 else "1,2,3"
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    whole = train(
        "linear-learner", str(path), hyperparameters=HP, on_bad_rows="skip", progress=False
    )
    assert whole.metrics["train:bad_rows"] == len(bad_lines)
    assert whole.metrics["train:rows"] == 6000 - len(bad_lines)
    ckpt = tmp_path / "ckpt"
    for limit in (2, 3):
        with pytest.raises(TrainingInterrupted):
            train(
                "linear-learner",
                str(path),
                hyperparameters=HP,
                on_bad_rows="skip",
                checkpoint_dir=ckpt,
                max_batches=limit,
                progress=False,
            )
    resumed = train(
        "linear-learner",
        str(path),
        hyperparameters=HP,
        on_bad_rows="skip",
        checkpoint_dir=ckpt,
        progress=False,
    )
    assert resumed.metrics["train:bad_rows"] == len(bad_lines)
    _same_tensors(whole.state, resumed.state)


# -- real processes -------------------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamfit", *args]


def _train_args(train_uri: str, out: Path, ckpt: Path | None = None) -> list[str]:
    args = [
        "train",
        "linear-learner",
        "--train",
        train_uri,
        "--output",
        str(out),
        "--checkpoint-batches",
        "4",
        "--no-progress",
    ]
    for name, value in HP.items():
        args += ["--hp", f"{name}={value}"]
    if ckpt is not None:
        args += ["--checkpoint-dir", str(ckpt)]
    return args


def _wait_for_checkpoint(ckpt: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not list(ckpt.glob("checkpoint-*")):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def _csv_lines(n: int) -> list[bytes]:
    out = []
    for batch in linear_task(4, seed=2).blocks(n):
        labels = batch.column("label").to_numpy()
        x = batch.column("features").flatten().to_numpy().reshape(-1, 4)
        out += [
            (",".join(f"{v:g}" for v in (y, *row)) + "\n").encode()
            for y, row in zip(labels, x, strict=True)
        ]
    return out


def test_sigterm_checkpoints_exits_75_and_resume_equals_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    lines = _csv_lines(12_000)
    # Uninterrupted, from a pipe.
    whole = tmp_path / "whole"
    subprocess.run(_cli(*_train_args("-", whole)), input=b"".join(lines), check=True)
    # Interrupted: feed part of the data, SIGTERM while it waits for more.
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    proc = subprocess.Popen(
        _cli(*_train_args("-", out, ckpt)), stdin=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None
    proc.stdin.write(b"".join(lines[:5000]))
    proc.stdin.flush()
    _wait_for_checkpoint(ckpt, proc)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.stdin.write(b"".join(lines[5000:6000]))  # lets the loop reach a batch boundary
        proc.stdin.close()
    except BrokenPipeError:
        pass
    assert proc.wait(timeout=60) == 75
    assert proc.stderr is not None
    with proc.stderr:
        assert b"interrupted" in proc.stderr.read()
    position = State.load(sorted(ckpt.glob("checkpoint-*"))[-1]).position.rows
    assert 0 < position <= 6000
    # Resume: the producer replays the pipe from the checkpoint's position.
    subprocess.run(_cli(*_train_args("-", out, ckpt)), input=b"".join(lines[position:]), check=True)
    _same_tensors(State.load(whole / "state"), State.load(out / "state"))


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    data = tmp_path / "train.parquet"
    write_batches(data, linear_task(4, seed=3).blocks(60_000, block=5000))
    whole = tmp_path / "whole"
    subprocess.run(_cli(*_train_args(str(data), whole)), check=True)
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    proc = subprocess.Popen(_cli(*_train_args(str(data), out, ckpt)), stderr=subprocess.PIPE)
    with proc:
        _wait_for_checkpoint(ckpt, proc)
        proc.kill()
    subprocess.run(_cli(*_train_args(str(data), out, ckpt)), check=True)
    _same_tensors(State.load(whole / "state"), State.load(out / "state"))
