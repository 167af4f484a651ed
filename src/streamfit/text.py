"""Text that users wrote (job names, owners, tags, reasons), made safe to show: control
characters as visible escapes, long values clipped.

Terminals obey escape sequences and mail headers end at a newline, so anything a spec or a run
wrote goes through :func:`printable` before it is printed or sent, and through :func:`clip`
before it goes into an error message.

>>> printable("ok\\x1b[2J\\u202egnp.exe")
'ok\\\\x1b[2J\\\\u202egnp.exe'
>>> clip("x" * 1000)
'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (1,000 characters)'
"""

from __future__ import annotations

import re

__all__ = ["CONTROL", "clip", "control_character", "control_class", "printable"]

#: The characters refused in a spec's names and escaped on output, as ranges of code points:
#: C0, DEL and C1 controls, the Unicode line and paragraph separators, and the bidirectional
#: overrides and isolates that make text display in another order than it reads ("Trojan
#: Source").
CONTROL = ((0x00, 0x1F), (0x7F, 0x9F), (0x2028, 0x2029), (0x202A, 0x202E), (0x2066, 0x2069))


def control_class(*, lines: bool = False) -> str:
    """A regex character class of the control characters (less tab and newline with
    ``lines``), written with escapes in the syntax Python's ``re`` and Rust's ``regex`` share.

    >>> print(control_class(lines=True)[:27])
    [\\u0000-\\u0008\\u000b-\\u001f
    """
    ranges = list(CONTROL)
    if lines:  # C0 less the tab (9) and the newline (10)
        ranges[0:1] = [(0x00, 0x08), (0x0B, 0x1F)]
    return "[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges) + "]"


_ANY = re.compile(control_class())
_ANY_BUT_LINES = re.compile(control_class(lines=True))
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


_TABLE = {code: _escape(chr(code)) for a, b in CONTROL for code in range(a, b + 1)}
_LINES = {code: escaped for code, escaped in _TABLE.items() if chr(code) not in "\t\n"}


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\n``); with
    ``lines``, tabs and newlines are kept (a failure's reason, an email's body).

    >>> printable("a\\tb\\nc"), printable("a\\tb\\nc", lines=True)
    ('a\\\\tb\\\\nc', 'a\\tb\\nc')
    """
    return text.translate(_LINES if lines else _TABLE)


def control_character(text: str, *, lines: bool = False) -> str | None:
    """The first control character in ``text``, escaped, or None; with ``lines``, tabs and
    newlines do not count.

    >>> control_character("job\\x07"), control_character("a\\tb")
    ('\\\\x07', '\\\\t')
    >>> control_character("a\\tb\\n", lines=True)
    """
    found = (_ANY_BUT_LINES if lines else _ANY).search(text)
    return _escape(found[0]) if found else None


def clip(text: str, keep: int = 60) -> str:
    """``text`` if short, else its first ``keep`` characters and how long it was: an error
    message never echoes a megabyte-long name."""
    if len(text) <= keep + 20:
        return text
    return f"{text[:keep]}... ({len(text):,} characters)"
