"""vocab.txt: read from the file or its folder, one word per id; bad files and widths are
errors naming the file (and the line)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streamfit.data.vocabulary import Vocabulary
from streamfit.errors import ConfigError, DataError


def vocab_file(folder: Path, text: str | bytes, name: str = "vocab.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_ids_are_line_numbers_from_the_file_or_its_folder(tmp_path: Path) -> None:
    path = vocab_file(tmp_path / "aux", "kernel\ngpu\r\nnaïve\n")
    for where in (path, path.parent, f"{path.parent}/"):
        vocab = Vocabulary.load(str(where))
        assert vocab.words == ("kernel", "gpu", "naïve")
        assert (vocab.id("gpu"), vocab.id("naïve"), vocab.id("rust")) == (1, 2, None)
        assert vocab.source == str(path)
    assert Vocabulary.load(str(vocab_file(tmp_path, "a\nb", "v.txt"))).words == ("a", "b")


def test_a_vocabulary_is_compared_by_its_words(tmp_path: Path) -> None:
    a = Vocabulary(["x", "y"], "a.txt")
    assert a == Vocabulary(["x", "y"], "b.txt") != Vocabulary(["y", "x"])
    assert hash(a) == hash(Vocabulary(["x", "y"]))
    assert (
        Vocabulary.from_json(a.to_json()) == a
        and Vocabulary.from_json(a.to_json()).source == "a.txt"
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("kernel\ngpu\nkernel\n", 3, r"listed twice \(also line 1\)"),
        ("kernel\n\ngpu\n", 2, "an empty word"),
        (b"kernel\ngpu\n\xff\xfe\n", 3, "not UTF-8"),
    ],
)
def test_bad_files_name_the_line(
    tmp_path: Path, text: str | bytes, line: int, message: str
) -> None:
    path = vocab_file(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        Vocabulary.load(str(path))
    assert info.value.source == str(path) and info.value.row == line


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such vocabulary"):
        Vocabulary.load(str(tmp_path))
    with pytest.raises(ConfigError, match="no such vocabulary"):
        Vocabulary.load(str(tmp_path / "nope.txt"))


def test_the_width_must_be_feature_dim(tmp_path: Path) -> None:
    vocab = Vocabulary.load(str(vocab_file(tmp_path, "a1\nb1\nc1\n")))
    vocab.check_width(3)
    vocab.check_width(None)
    with pytest.raises(ConfigError, match=r"vocab.txt: 3 words, fewer than feature_dim \(4\)"):
        vocab.check_width(4)
    with pytest.raises(ConfigError, match=r"3 words, more than feature_dim \(2\)"):
        vocab.check_width(2)


def test_words_raw_text_cannot_match_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        Vocabulary.load(str(vocab_file(tmp_path, "kernel\nLinux\nc++\n")))
    assert "2 words are not in the tokenizer's form" in caplog.text
