"""The kinds of text in a spec: their patterns run in pydantic's Rust core, and ``message``
says in words what they refused."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from streamfit.jobs.fields import (
    MAX_HP_DEPTH,
    EnvName,
    Key,
    Line,
    Text,
    check_hyperparameter,
    message,
)


class Sample(BaseModel):
    line: Line = ""
    key: Key = "k"
    text: Text = ""
    env: dict[EnvName, Text] = {}


def _messages(**values: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Sample(**values)
    return [message(e) for e in info.value.errors()]


def test_messages_say_which_character_in_words() -> None:
    assert _messages(line="a\x1bb") == ["a control character (\\x1b) is not allowed"]
    assert _messages(text="a\x00") == [
        "a control character (\\x00) is not allowed (tabs and newlines are)"
    ]
    assert _messages(env={"A=B": "x"}) == ["'=' is not allowed in a variable's name"]
    assert _messages(env={"A\x07": "x"}) == ["a control character (\\x07) is not allowed"]
    assert _messages(key="") == ["String should have at least 1 character"]
    assert _messages(line="x" * 201) == ["String should have at most 200 characters"]


def test_free_text_takes_tabs_and_newlines_names_do_not() -> None:
    assert Sample(text="a\tb\nc").text == "a\tb\nc"
    assert _messages(line="a\tb") == ["a control character (\\t) is not allowed"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0.1, None),
        ([1, "two", None, True, {"k": [1.5]}, {3: "int keys"}], None),
        ("x" * 4096, None),
        ("x" * 4097, "a text of 4,097 characters"),
        ("tab\tnewline\n", None),
        ("esc\x1b", "a control character (\\x1b) in a text"),
        ({"k\x1b": 1}, "a control character"),
        (list(range(10_000)), "more than 10,000 values"),
        ({"a": b"bytes"}, "a value of type bytes"),
        ({(1, 2): 3}, "a key of type tuple"),
    ],
)
def test_hyperparameter_values_are_json_like_and_bounded(value: Any, problem: str | None) -> None:
    if problem is None:
        check_hyperparameter("h", value)
    else:
        with pytest.raises(ValueError, match=re.escape(problem)):
            check_hyperparameter("h", value)


def test_hyperparameter_depth() -> None:
    value: Any = 1
    for _ in range(MAX_HP_DEPTH):
        value = [value]
    check_hyperparameter("h", value)
    with pytest.raises(ValueError, match="nested deeper than 8 levels"):
        check_hyperparameter("h", [value])
