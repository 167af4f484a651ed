"""Checkpoints know what they were trained on: resuming on other data or other settings is an
error; ``init_state`` is the way to continue a state on new data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from streamfit import IncompatibleStateError, State, TrainingInterrupted, train
from streamfit.core.persist import _json_sum
from tests.conftest import BinaryFiles

HP = {
    "predictor_type": "binary_classifier",
    "num_models": 2,
    "mini_batch_size": 500,
    "num_point_for_scaler": 1000,
}


def _interrupted(data: Path | str, ckpt: Path, **hp: object) -> None:
    with pytest.raises(TrainingInterrupted):
        train(
            "linear-learner",
            str(data),
            hyperparameters={**HP, **hp},
            checkpoint_dir=ckpt,
            max_batches=3,
            progress=False,
        )


def test_a_checkpoint_records_its_input(binary_files: BinaryFiles, tmp_path: Path) -> None:
    _interrupted(binary_files.train, tmp_path / "ckpt")
    latest = sorted((tmp_path / "ckpt").iterdir())[-1]
    identity = State.load(latest).inputs["train"]
    assert identity["kind"] == "files"
    assert identity["files"] == [
        {
            "path": str(binary_files.train),
            "size": binary_files.train.stat().st_size,
            "modified": identity["files"][0]["modified"],
        }
    ]


def test_a_finished_checkpoint_reused_with_other_data_is_refused(
    binary_files: BinaryFiles, tmp_path: Path
) -> None:
    """The reported case: a checkpoint folder reused with other data returned the old model
    without reading the new data (exit 0, 0 rows/s)."""
    ckpt = tmp_path / "ckpt"
    train("linear-learner", str(binary_files.shard_a), hyperparameters=HP, checkpoint_dir=ckpt)
    with pytest.raises(IncompatibleStateError, match=r"cannot resume on other data.*--init-state"):
        train("linear-learner", str(binary_files.shard_b), hyperparameters=HP, checkpoint_dir=ckpt)
    # the same data: the finished run's model, as before
    again = train(
        "linear-learner", str(binary_files.shard_a), hyperparameters=HP, checkpoint_dir=ckpt
    )
    assert again.metrics["train:rows"] == binary_files.n_train // 2


def test_a_changed_file_or_folder_is_other_data(binary_files: BinaryFiles, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(binary_files.shard_a, data / "a.parquet")
    _interrupted(data, tmp_path / "ckpt")
    shutil.copy(binary_files.shard_b, data / "b.parquet")
    with pytest.raises(IncompatibleStateError, match=r"b\.parquet is new"):
        train("linear-learner", str(data), hyperparameters=HP, checkpoint_dir=tmp_path / "ckpt")
    (data / "b.parquet").unlink()
    stat = (data / "a.parquet").stat()
    os.utime(data / "a.parquet", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(IncompatibleStateError, match=r"a\.parquet was modified"):
        train("linear-learner", str(data), hyperparameters=HP, checkpoint_dir=tmp_path / "ckpt")


def test_resuming_with_other_hyperparameters_is_refused(
    binary_files: BinaryFiles, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ckpt"
    _interrupted(binary_files.train, ckpt)
    with pytest.raises(IncompatibleStateError, match=r"learning_rate='auto' -> 0\.5"):
        train(
            "linear-learner",
            str(binary_files.train),
            hyperparameters={**HP, "learning_rate": "0.5"},
            checkpoint_dir=ckpt,
        )
    # post-training settings change no training: they may differ
    result = train(
        "linear-learner",
        str(binary_files.train),
        hyperparameters={**HP, "binary_classifier_model_selection_criteria": "f_beta"},
        checkpoint_dir=ckpt,
    )
    assert result.metrics["train:rows"] == binary_files.n_train


def test_init_state_continues_a_state_on_new_data(
    binary_files: BinaryFiles, tmp_path: Path
) -> None:
    first = train("linear-learner", str(binary_files.shard_a), hyperparameters=HP, output=tmp_path)
    second = train(
        "linear-learner",
        str(binary_files.shard_b),
        init_state=tmp_path / "state",
        hyperparameters={"learning_rate": "0.01"},
    )
    assert second.state.trainer.rows == binary_files.n_train
    assert second.state.inputs["train"]["uri"] == str(binary_files.shard_b)
    assert first.state.inputs["train"]["uri"] == str(binary_files.shard_a)


def test_a_checkpoint_written_before_inputs_were_recorded_still_resumes(
    binary_files: BinaryFiles, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ckpt"
    _interrupted(binary_files.train, ckpt)
    for folder in ckpt.iterdir():
        doc = json.loads((folder / "state.json").read_text())
        doc.pop("inputs")
        doc["sha256"] = _json_sum(doc)
        (folder / "state.json").write_text(json.dumps(doc))
    result = train(
        "linear-learner", str(binary_files.train), hyperparameters=HP, checkpoint_dir=ckpt
    )
    assert result.metrics["train:rows"] == binary_files.n_train
