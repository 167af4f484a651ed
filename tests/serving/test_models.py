"""Which models a server answers for, and under which names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streamfit.errors import ConfigError, CorruptStateError
from streamfit.serving.models import load_served, parse_model_arg
from tests.serving.conftest import Models


def test_models_are_named_after_their_folder_or_as_given(models: Models) -> None:
    served = load_served([str(models.ll), f"clusters={models.kmeans}"])
    assert [(s.name, s.model.algorithm, s.path) for s in served] == [
        ("ll", "linear-learner", models.ll),
        ("clusters", "kmeans", models.kmeans),
    ]


def test_a_training_jobs_output_folder_serves_its_model(models: Models, tmp_path: Path) -> None:
    shutil.copytree(models.pca, tmp_path / "job" / "model")
    (served,) = load_served([str(tmp_path / "job")])
    assert (served.name, served.path, served.model.algorithm) == (
        "job",
        tmp_path / "job" / "model",
        "pca",
    )


def test_a_path_with_an_equals_sign_is_a_path(models: Models, tmp_path: Path) -> None:
    shutil.copytree(models.ll, tmp_path / "a=b" / "ll")
    assert parse_model_arg(str(tmp_path / "a=b" / "ll")) == ("ll", tmp_path / "a=b" / "ll")


@pytest.mark.parametrize("arg", ["bad name=/x", "=/x", "a/b=/x", f"{'n' * 64}=/x"])
def test_names_that_cannot_be_a_url_segment_are_refused(arg: str) -> None:
    with pytest.raises(ConfigError, match="model name"):
        parse_model_arg(arg)


def test_nothing_to_serve_and_unreadable_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one model"):
        load_served([])
    with pytest.raises(ConfigError, match="no such model folder"):
        load_served([str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorruptStateError, match="not a readable streamfit model"):
        load_served([str(tmp_path / "empty")])
