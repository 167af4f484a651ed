"""The output folder is checked before any data is read, and training never writes over
anything it did not write, nor where it would be read back as input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streamfit import ConfigError, train
from tests.conftest import BinaryFiles

HP = {"predictor_type": "binary_classifier", "num_models": 2, "mini_batch_size": 500}


def _bad_data(tmp_path: Path) -> Path:
    """A file whose first row is bad: an output check that reads no data fails before it."""
    path = tmp_path / "bad.csv"
    path.write_text("1,abc\n0,2\n")
    return path


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_output_that_is_a_file_fails_before_any_data_is_read(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("precious")
    with pytest.raises(ConfigError, match="is a file"):
        train("linear-learner", str(_bad_data(tmp_path)), hyperparameters=HP, output=out)
    assert out.read_text() == "precious"
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        train("linear-learner", str(_bad_data(tmp_path)), hyperparameters=HP, output=out / "x")


@pytest.mark.parametrize("folder", ["model", "state"])
def test_unrelated_model_or_state_folders_are_never_deleted(tmp_path: Path, folder: str) -> None:
    out = tmp_path / "out"
    (out / folder).mkdir(parents=True)
    (out / folder / "notes.txt").write_text("precious")
    before = _files(out)
    with pytest.raises(ConfigError, match="refusing to replace"):
        train("linear-learner", str(_bad_data(tmp_path)), hyperparameters=HP, output=out)
    assert _files(out) == before


def test_training_again_into_its_own_output_replaces_it(
    binary_files: BinaryFiles, tmp_path: Path
) -> None:
    for _ in range(2):
        train("linear-learner", str(binary_files.train), hyperparameters=HP, output=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "curves.jsonl",
        "metrics.json",
        "model",
        "state",
    ]


def test_an_output_inside_the_folder_it_reads_is_refused(
    binary_files: BinaryFiles, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(binary_files.train, data / "train.parquet")
    with pytest.raises(ConfigError, match="would be read back as data"):
        train("linear-learner", str(data), hyperparameters=HP, output=data / "out")
    with pytest.raises(ConfigError, match=r"--checkpoint-dir .* is inside"):
        train(
            "linear-learner",
            str(data),
            hyperparameters=HP,
            output=tmp_path / "out",
            checkpoint_dir=data / "ckpt",
        )
    assert sorted(p.name for p in data.iterdir()) == ["train.parquet"]


def test_an_input_that_training_would_overwrite_is_refused(
    binary_files: BinaryFiles, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(binary_files.train, out / "metrics.json")
    with pytest.raises(ConfigError, match="which training writes"):
        train(
            "linear-learner",
            str(out / "metrics.json"),
            content_type="application/x-parquet",
            hyperparameters=HP,
            output=out,
        )
    assert (out / "metrics.json").read_bytes() == binary_files.train.read_bytes()
