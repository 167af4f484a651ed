"""The tokenizer's rules, one by one, and the stop words shipped with the package."""

from __future__ import annotations

import pytest

from streamfit.data.tokenize import STOP_WORDS, tokenize


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("GPU Kernel", ["gpu", "kernel"]),  # lower case
        ("naïve Ünïcode 日本語 テキスト", ["naïve", "ünïcode", "日本語", "テキスト"]),  # any script
        ("a-b c/d e.f g,h", []),  # one character: dropped
        ("multi-word e-mail", ["multi", "word", "mail"]),  # punctuation splits
        ("2024 3.14 1,000 __ _1_", []),  # no letter: no word
        ("mp3 x86_64 ipv6 3d", ["mp3", "x86_64", "ipv6", "3d"]),  # with a letter: a word
        ("don't O'Reilly l’été", ["don't", "o'reilly", "l'été"]),  # apostrophes join
        ("'quoted' 'tis", ["quoted", "tis"]),  # but do not start or end a word
        ("kernel's GPU’s James's", ["kernel", "gpu", "james"]),  # possessives cut
        ("  \t\r\n  ", []),
    ],
)
def test_rules(text: str, words: list[str]) -> None:
    assert tokenize(text) == words


def test_stop_words_are_function_words_in_the_tokenizers_form() -> None:
    assert {"the", "and", "of", "don't", "will"} <= STOP_WORDS
    assert not {"system", "computer", "kernel", "file"} & STOP_WORDS  # content words stay
    assert all(tokenize(w) in ([w], []) for w in STOP_WORDS)  # "i", "a" never reach it anyway
