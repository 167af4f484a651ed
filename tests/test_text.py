"""Escaping and clipping of text users wrote, before it is printed, mailed or quoted."""

from __future__ import annotations

import re
import unicodedata

import pytest

from streamfit.text import CONTROL, clip, control_character, control_class, printable


def test_every_control_character_is_escaped_and_nothing_else() -> None:
    controls = {c for a, b in CONTROL for c in range(a, b + 1)}
    assert all(unicodedata.category(chr(c)) == "Cc" for c in range(0x100) if c in controls)
    for code in range(0x3000):
        char = chr(code)
        shown = printable(f"a{char}b")
        if code in controls:
            assert shown.startswith("a\\") and shown.endswith("b") and char not in shown
            assert control_character(char) is not None
        else:
            assert shown == f"a{char}b" and control_character(char) is None


@pytest.mark.parametrize(
    ("raw", "one_line", "lines"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("a\nb\tc\rd", "a\\nb\\tc\\rd", "a\nb\tc\\rd"),
        ("\x00\x07\x7f\x9b", "\\x00\\x07\\x7f\\x9b", "\\x00\\x07\\x7f\\x9b"),
        ("file\u202ecod.exe", "file\\u202ecod.exe", "file\\u202ecod.exe"),
        ("x\u2028y", "x\\u2028y", "x\\u2028y"),
        ("[red]markup[/] and \\x1b", "[red]markup[/] and \\x1b", "[red]markup[/] and \\x1b"),
        ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),
    ],
)
def test_printable(raw: str, one_line: str, lines: str) -> None:
    assert printable(raw) == one_line
    assert printable(raw, lines=True) == lines
    assert printable(printable(raw)) == printable(raw)


def test_the_class_is_the_same_for_python_and_the_table() -> None:
    pattern, free = re.compile(control_class()), re.compile(control_class(lines=True))
    for code in range(0x2100):
        char = chr(code)
        assert bool(pattern.match(char)) == (printable(char) != char)
        assert bool(free.match(char)) == (printable(char, lines=True) != char)


def test_clip() -> None:
    assert clip("short") == "short"
    assert clip("x" * 80) == "x" * 80  # not worth clipping
    assert clip("y" * 1_000_000) == "y" * 60 + "... (1,000,000 characters)"
    assert clip("z" * 500, 10) == "z" * 10 + "... (500 characters)"
