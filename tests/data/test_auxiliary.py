"""The text settings a run reads with: given, else recorded by the state or model continued;
a vocabulary that changes the ids is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamfit.data.auxiliary import text_record, text_settings
from streamfit.data.vocabulary import Vocabulary
from streamfit.errors import ConfigError


def vocab(tmp_path: Path, words: list[str]) -> Path:
    path = tmp_path / "aux" / "vocab.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(f"{w}\n" for w in words))
    return path.parent


def test_defaults_given_and_recorded(tmp_path: Path) -> None:
    assert text_settings(None, None, None, 10) == (None, True)
    folder = vocab(tmp_path, ["gpu", "kernel"])
    given, stops = text_settings(folder, False, None, 2)
    assert given is not None and given.words == ("gpu", "kernel") and stops is False
    record = text_record(given, stops)
    assert record is not None
    assert text_settings(None, None, record, 2) == (given, False)  # recorded: kept
    assert text_settings(folder, True, record, 2) == (given, True)  # the same vocabulary: fine
    assert text_record(None, True) is None
    assert text_record(None, False) == {"stop_words": False, "vocabulary": None}


def test_another_vocabulary_or_width_is_refused(tmp_path: Path) -> None:
    record = text_record(Vocabulary(["gpu", "kernel"], "old/vocab.txt"), True)
    other = vocab(tmp_path, ["kernel", "gpu"])
    with pytest.raises(ConfigError, match=r"not the vocabulary the model was trained with \(old"):
        text_settings(other, None, record, 2)
    with pytest.raises(ConfigError, match="fewer than feature_dim"):
        text_settings(other, None, None, 3)
    with pytest.raises(ConfigError, match="more than feature_dim"):
        text_settings(None, None, record, 1)
