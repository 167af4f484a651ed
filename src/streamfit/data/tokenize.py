"""The tokenizer of raw text, and the English stop words streamfit ships.

A document becomes words by four rules, applied in order:

1. it is lower-cased (Python's ``str.lower``, so any script);
2. a token is a run of word characters (Unicode ``\\w``: letters, digits, underscore), where an
   apostrophe (``'`` or ``’``) between two word characters joins the run: ``don't`` is one
   token, ``'quoted'`` is ``quoted``;
3. a possessive ``'s`` is cut (``kernel's`` -> ``kernel``), ``’`` is written ``'``;
4. a token of fewer than two characters, or without a letter (``42``, ``3.14``, ``__``) is
   dropped: numbers are not topics, while ``mp3``, ``x86_64`` and ``ipv6`` are kept.

Stop words (:data:`STOP_WORDS`, the Snowball list in ``stopwords_en.txt``) are dropped by the
reader when asked (:class:`streamfit.data.base.SourceOptions`), not here.

>>> tokenize("The kernel's GPU driver doesn't support x86_64, 3.14 or IPv6!")
['the', 'kernel', 'gpu', 'driver', "doesn't", 'support', 'x86_64', 'or', 'ipv6']
"""

from __future__ import annotations

import re
from importlib import resources

__all__ = ["STOP_WORDS", "tokenize"]

_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*")
_LETTER = re.compile(r"[^\W\d_]")


def tokenize(text: str) -> list[str]:
    """The words of ``text`` (see the module docstring for the rules)."""
    out = []
    for found in _TOKEN.findall(text.lower()):
        token = found.replace("\u2019", "'") if "\u2019" in found else found
        if token.endswith("'s"):
            token = token[:-2]
        if len(token) >= 2 and _LETTER.search(token):
            out.append(token)
    return out


def _stop_words() -> frozenset[str]:
    text = resources.files("streamfit.data").joinpath("stopwords_en.txt").read_text("utf-8")
    return frozenset(w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#"))


#: English function words, dropped from raw text unless asked not to (``--no-stop-words``).
STOP_WORDS = _stop_words()
