"""How a job reads raw text: the vocabulary of SageMaker's auxiliary channel and whether stop
words are dropped. A state records them (``State.inputs["text"]``) and its models too
(``Model.meta["text"]``), so that a resumed or continued run, its validation and test channels
and ``predict`` count words into the same ids.

>>> text_settings(None, None, {"stop_words": False, "vocabulary": None}, feature_dim=5000)
(None, False)
>>> text_record(None, True) is None  # the defaults are not recorded
True
"""

from __future__ import annotations

import os
from typing import Any

from streamfit.core.state import TEXT_INPUT
from streamfit.data.vocabulary import Vocabulary
from streamfit.errors import ConfigError

__all__ = ["TEXT_KEY", "text_record", "text_settings"]

#: Where a state's ``inputs`` and a model's ``meta`` keep the text settings.
TEXT_KEY = TEXT_INPUT


def text_settings(
    auxiliary: str | os.PathLike[str] | Vocabulary | None,
    stop_words: bool | None,
    recorded: dict[str, Any] | None,
    feature_dim: int | None,
) -> tuple[Vocabulary | None, bool]:
    """The vocabulary and stop-word setting to read with: those given, else those
    ``recorded`` (by the state or model continued), else none and stop words dropped.

    A vocabulary given that differs from the one recorded is refused (its ids would mean other
    words), and so is one of another length than ``feature_dim``.
    """
    recorded = recorded or {}
    known = recorded.get("vocabulary")
    earlier = None if known is None else Vocabulary.from_json(known)
    if auxiliary is None:
        vocabulary = earlier
    elif isinstance(auxiliary, Vocabulary):
        vocabulary = auxiliary
    else:
        vocabulary = Vocabulary.load(os.fspath(auxiliary))
    if earlier is not None and vocabulary is not None and vocabulary != earlier:
        raise ConfigError(
            f"{vocabulary.source}: not the vocabulary the model was trained with "
            f"({earlier.source}, {len(earlier):,} words): the same ids would mean other words"
        )
    if vocabulary is not None:
        vocabulary.check_width(feature_dim)
    if stop_words is None:
        stop_words = bool(recorded.get("stop_words", True))
    return vocabulary, stop_words


def text_record(vocabulary: Vocabulary | None, stop_words: bool) -> dict[str, Any] | None:
    """What a state records of the text settings; None for the defaults (no vocabulary, stop
    words dropped), which need no record."""
    if vocabulary is None and stop_words:
        return None
    return {
        "stop_words": stop_words,
        "vocabulary": None if vocabulary is None else vocabulary.to_json(),
    }
