"""A vocabulary: SageMaker's auxiliary channel, ``vocab.txt`` with one word per line in id
order. It names the ids of bag-of-words data in every format, and fixes the ids of raw text.

>>> v = Vocabulary(("kernel", "gpu", "rust"))
>>> v.id("gpu"), v.id("cobol"), v.words[2], len(v)
(1, None, 'rust', 3)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import fsspec

from streamfit.data.tokenize import tokenize
from streamfit.errors import ConfigError, DataError

__all__ = ["VOCABULARY_FILE", "Vocabulary"]

log = logging.getLogger(__name__)

#: The file of the auxiliary channel that lists the words.
VOCABULARY_FILE = "vocab.txt"


class Vocabulary:
    """Words by id; ``source`` names the file they came from (for errors)."""

    def __init__(self, words: Sequence[str], source: str = "vocabulary") -> None:
        self.words = tuple(words)
        self.source = source
        index: dict[str, int] = {}
        for i, word in enumerate(self.words):
            if not word:
                raise DataError("an empty word", source=source, row=i + 1)
            if word in index:
                raise DataError(
                    f"{word!r} is listed twice (also line {index[word] + 1}): a word has one id",
                    source=source,
                    row=i + 1,
                )
            index[word] = i
        self._index = index

    @classmethod
    def load(cls, path: str) -> Vocabulary:
        """The words of ``path``: a ``vocab.txt`` file, or a folder (the auxiliary channel)
        that holds one. UTF-8, one word a line, the line number minus one is the id."""
        fs, where = fsspec.core.url_to_fs(path)
        if fs.isdir(where):
            path = path.rstrip("/") + "/" + VOCABULARY_FILE
            where = where.rstrip("/") + "/" + VOCABULARY_FILE
        if not fs.exists(where):
            raise ConfigError(
                f"{path}: no such vocabulary file (a {VOCABULARY_FILE} or its folder)"
            )
        with fsspec.open(path, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise DataError(f"not UTF-8 (byte {exc.start + 1})", source=path, row=line) from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line
        vocab = cls([line.rstrip("\r").strip() for line in lines], source=path)
        odd = [w for w in vocab.words if tokenize(w) != [w]]
        if odd:
            log.warning(
                "%s: %d words are not in the tokenizer's form (lower case, word characters; "
                "e.g. %r) and never match raw text",
                path,
                len(odd),
                odd[0],
            )
        return vocab

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def __hash__(self) -> int:
        return hash(self.words)

    def __repr__(self) -> str:
        return f"Vocabulary({self.source!r}, {len(self):,} words)"

    def id(self, word: str) -> int | None:
        """The id of ``word``, None when it is not listed."""
        return self._index.get(word)

    @property
    def index(self) -> dict[str, int]:
        return self._index

    def check_width(self, feature_dim: int | None) -> None:
        """One word per feature: a vocabulary of another length than ``feature_dim`` is an
        error naming its file."""
        if feature_dim is not None and feature_dim != len(self):
            relation = "fewer" if len(self) < feature_dim else "more"
            raise ConfigError(
                f"{self.source}: {len(self):,} words, {relation} than feature_dim "
                f"({feature_dim:,}): the vocabulary lists one word per feature id"
            )

    def to_json(self) -> dict[str, Any]:
        return {"words": list(self.words), "source": self.source}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Vocabulary:
        return cls([str(w) for w in doc["words"]], str(doc.get("source", "vocabulary")))
