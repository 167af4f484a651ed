"""The kinds of text a job spec holds, each with its limits: one line (names, owners, tags,
paths: no control characters) or free text (commands, env values: tabs and newlines too), and
hyperparameter values (JSON-like, bounded in depth and size).

Limits keep one spec small enough to store, list and mail, and keep terminals that print it
safe; :class:`~streamfit.jobs.spec.JobSpec` lists them. The characters are checked by pydantic's
own (Rust) patterns, fast enough for 10,000 specs a submission; :func:`message` says what a
pattern refused in words.

>>> check_hyperparameter("learning_rate", [0.1, {"decay": 0.5, "schedule": "cosine"}])
>>> check_hyperparameter("layers", [[[[[[[[[[64]]]]]]]]]])
Traceback (most recent call last):
ValueError: nested deeper than 8 levels
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints

from streamfit.text import clip, control_character, control_class

__all__ = [
    "MAX_HP_DEPTH",
    "MAX_HP_ITEMS",
    "MAX_HP_TEXT",
    "Address",
    "EnvName",
    "Key",
    "Line",
    "PathText",
    "Text",
    "Url",
    "check_hyperparameter",
    "message",
]

MAX_HP_DEPTH = 8  # lists and mappings within a hyperparameter's value
MAX_HP_ITEMS = 10_000  # values within one hyperparameter's value, nested ones included
MAX_HP_TEXT = 4_096  # characters of a text value

_ONE_LINE = "^" + control_class().replace("[", "[^", 1) + "*$"
_FREE_TEXT = "^" + control_class(lines=True).replace("[", "[^", 1) + "*$"
_ENV_NAME = "^" + control_class().replace("[", "[^=", 1) + "*$"


def _line(most: int, least: int = 0) -> StringConstraints:
    return StringConstraints(min_length=least, max_length=most, pattern=_ONE_LINE)


#: A key of tags, inputs, hyperparameters; an algorithm's or device's name.
Key = Annotated[str, _line(100, least=1)]
#: A short value (a name, a tag's value).
Line = Annotated[str, _line(200)]
#: An email address (RFC 5321 caps a path at 254 characters).
Address = Annotated[str, _line(254)]
#: A path or URI (Linux's PATH_MAX).
PathText = Annotated[str, _line(4_096)]
#: A URL to post to.
Url = Annotated[str, _line(2_048)]
#: An environment variable's name: what ``execve`` can pass (no ``=``), one line.
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_ENV_NAME)]
#: A command's argument or an environment variable's value: 64 KiB, tabs and newlines allowed
#: (``python -c`` scripts, certificates).
Text = Annotated[str, StringConstraints(max_length=65_536, pattern=_FREE_TEXT)]


def message(error: Any) -> str:
    """What one of pydantic's errors (``ValidationError.errors()``) says, in words where it
    is one of these patterns, never echoing the value whole.

    >>> message({"type": "string_pattern_mismatch", "input": "ctr\\x1b[2J",
    ...          "ctx": {"pattern": _ONE_LINE}, "msg": "String should match pattern ..."})
    'a control character (\\\\x1b) is not allowed'
    """
    if error["type"] == "string_pattern_mismatch" and isinstance(error.get("input"), str):
        text, pattern = error["input"], error["ctx"]["pattern"]
        if pattern == _ENV_NAME and "=" in text:
            return "'=' is not allowed in a variable's name"
        if pattern == _FREE_TEXT:
            found = control_character(text, lines=True)
            return f"a control character ({found}) is not allowed (tabs and newlines are)"
        if pattern in (_ONE_LINE, _ENV_NAME):
            return f"a control character ({control_character(text)}) is not allowed"
    return clip(str(error["msg"]).removeprefix("Value error, "), 300)


def check_hyperparameter(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is JSON-like (None, bool, int, float, text, lists and
    mappings of them) within :data:`MAX_HP_DEPTH`, :data:`MAX_HP_ITEMS` and :data:`MAX_HP_TEXT`.
    Walks without recursion and stops at the first problem, so a value nested 100,000 deep or
    shared a billion times over costs no more than the limits."""
    items = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        items += 1
        if items > MAX_HP_ITEMS:
            raise ValueError(f"more than {MAX_HP_ITEMS:,} values in {clip(name)!r}")
        if item is None or isinstance(item, (bool, int, float)):
            continue
        if isinstance(item, str):
            if len(item) > MAX_HP_TEXT:
                raise ValueError(f"a text of {len(item):,} characters (at most {MAX_HP_TEXT:,})")
            found = control_character(item, lines=True)
            if found is not None:
                raise ValueError(f"a control character ({found}) in a text")
            continue
        if not isinstance(item, (list, tuple, dict)):
            raise ValueError(f"a value of type {type(item).__name__} (not JSON)")
        if depth >= MAX_HP_DEPTH:
            raise ValueError(f"nested deeper than {MAX_HP_DEPTH} levels")
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, (str, int)):
                    raise ValueError(f"a key of type {type(key).__name__} (text or integers)")
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        else:
            stack.extend((v, depth + 1) for v in item)
