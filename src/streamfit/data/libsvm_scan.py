"""A compiled scan of a block of libsvm lines into CSR arrays, in one pass over the bytes.

Compiled by numba on first use (and cached on disk), it runs without the GIL, so the
read-ahead thread parses while the training thread computes. It accepts the common form only:
decimal numbers whose digits make an integer below 2^53 scaled by a power of ten within 10^±22
(one rounding of exact doubles, so the result is Python's ``float`` to the bit), indices of at
most 18 digits, ASCII whitespace, ``#`` comments and ``qid:`` tokens. Anything else (``nan``,
``1_0``, a missing colon, a long mantissa) makes :func:`scan` return None, and the caller
parses the block by a slower path that names the bad line and field.

>>> labels, lines, indptr, indices, values = scan(b"1 3:0.5 7:2\\n\\n-1 qid:4 2:1e-3 # c\\n")
>>> labels.tolist(), lines.tolist(), indptr.tolist(), indices.tolist()
([1.0, -1.0], [0, 2], [0, 2, 3], [3, 7, 2])
>>> values.tolist() == [0.5, 2.0, float(np.float32(1e-3))]
True
>>> scan(b"1 3:nan\\n") is None
True
"""

# Chains of == compile to single compares; numba makes `x in (a, b)` a loop over a tuple.
# ruff: noqa: PLR1714, SIM109

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba
import numpy as np

__all__ = ["scan"]

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
F = TypeVar("F", bound=Callable[..., Any])


def scan(block: bytes) -> Arrays | None:
    """``(labels, line of each row, indptr, indices, values)`` of the non-blank lines of
    ``block``, or None where it holds anything but the common form (see the module doc)."""
    done, labels, lines, indptr, indices, values = _scan(np.frombuffer(block, np.uint8))
    return (labels, lines, indptr, indices, values) if done else None


def _jit(fn: F) -> F:
    """Compiled on first call, without the GIL; the machine code is cached on disk (beside
    this file, else in the user's cache), so only the first run on a machine compiles."""
    try:
        return numba.njit(nogil=True, cache=True, inline="always")(fn)  # type: ignore[return-value]
    except RuntimeError:  # no writable cache directory anywhere: compile once per process
        return numba.njit(nogil=True)(fn)  # type: ignore[return-value]


_NL, _COLON, _HASH, _DOT, _PLUS, _MINUS, _Q = 10, 58, 35, 46, 43, 45, 113
_MAX_EXACT = 1 << 53
_MAX_DIGITS = 18  # an int64 holds any 18 decimal digits
#: Powers of ten that a double holds exactly, and those an int64 holds.
_POW10 = np.array([float(10**k) for k in range(23)])
_POW10_INT = np.array([10**k for k in range(_MAX_DIGITS + 1)], dtype=np.int64)
_ODD = -1  # a position: the token is not of the common form


@_jit
def _value(mantissa: int, digits: int, exp10: int, negative: bool) -> float:
    """The number ``±mantissa * 10**exp10``, or NaN where it is not of the common form (a
    read number is never NaN here: ``nan`` is no token this scan accepts)."""
    if digits == 0 or digits > _MAX_DIGITS or mantissa > _MAX_EXACT:
        return np.nan
    if mantissa and not -22 <= exp10 <= 22:
        return np.nan
    # One rounding of two exact doubles: correctly rounded, as Python's float() is.
    value = float(mantissa)
    value = float(value * _POW10[exp10] if exp10 >= 0 else value / _POW10[-exp10])
    return -value if negative else value


@_jit
def _scan(buf: np.ndarray) -> tuple[bool, *Arrays]:
    """One pass of a state machine over the bytes: the common case (a digit) costs a
    multiply-add, and a token's end stores it. Nested loops per token cost twice as much."""
    n = len(buf)
    n_lines, n_pairs = 1, 0
    for i in range(n):
        n_lines += buf[i] == _NL
        n_pairs += buf[i] == _COLON
    labels = np.empty(n_lines, np.float32)
    lines = np.empty(n_lines, np.int64)
    indptr = np.zeros(n_lines + 1, np.int64)
    indices = np.empty(n_pairs, np.int64)
    values = np.empty(n_pairs, np.float32)
    fail = (False, labels, lines, indptr, indices, values)
    row, nnz, line = 0, 0, 0
    in_row = False  # the line's label has been read
    # The token being read: its digits so far, their count, the decimal exponent, its sign,
    # whether a '.' came, whether it has begun, and (a pair) the index before its colon.
    mantissa, digits, exp10, negative, fraction, begun = 0, 0, 0, False, False, False
    index, has_index = 0, False
    i = 0
    while i <= n:
        c = buf[i] if i < n else _NL  # a last line without a newline ends as if it had one
        d = np.uint8(c - np.uint8(48))  # wraps: one comparison tells a digit
        if d < 10:
            mantissa = mantissa * 10 + int(d)
            digits += 1
            exp10 -= fraction
            begun = True
        elif c == 32 or c == _NL or c == 9 or c == 13 or c == 11 or c == 12 or c == _HASH:
            if begun:  # the end of a token
                value = _value(mantissa, digits, exp10, negative)
                if np.isnan(value):
                    return fail
                if not in_row:
                    labels[row] = value
                    in_row = True
                elif has_index:
                    indices[nnz] = index
                    values[nnz] = value
                    nnz += 1
                else:
                    return fail
                mantissa, digits, exp10, negative, fraction, begun = 0, 0, 0, False, False, False
                has_index = False
            if c == _HASH:
                while i < n and buf[i] != _NL:
                    i += 1
                c = _NL
            if c == _NL:
                if in_row:
                    lines[row] = line
                    row += 1
                    indptr[row] = nnz
                    in_row = False
                line += 1
        elif c == _COLON:
            if not in_row or has_index or fraction or digits == 0 or digits > _MAX_DIGITS:
                return fail
            index = -mantissa if negative else mantissa
            has_index = True
            mantissa, digits, exp10, negative, fraction = 0, 0, 0, False, False
        elif c == _DOT:
            if fraction or (in_row and not has_index):  # an index has no fraction
                return fail
            fraction = begun = True
        elif c == _MINUS or c == _PLUS:
            if digits or fraction or negative or (begun and not has_index):
                return fail
            negative = c == _MINUS
            begun = True
        elif (c == 101 or c == 69) and digits and (has_index or not in_row):  # e, E
            minus = i + 1 < n and buf[i + 1] == _MINUS
            i += 1 + (i + 1 < n and (buf[i + 1] == _MINUS or buf[i + 1] == _PLUS))
            power, places = 0, 0
            while i < n and 48 <= buf[i] <= 57 and places < 5:
                power = power * 10 + int(buf[i]) - 48
                places += 1
                i += 1
            if places == 0 or places == 5 or (i < n and 48 <= buf[i] <= 57):
                return fail
            exp10 += -power if minus else power
            continue  # buf[i] is whatever follows: it must end the token
        elif c == _Q and in_row and not begun:  # qid:<something>, which the format ignores
            if i + 4 >= n or buf[i + 1] != 105 or buf[i + 2] != 100 or buf[i + 3] != _COLON:
                return fail
            i += 4
            if buf[i] <= 32 or buf[i] == _HASH:  # "qid:" alone is a bad token
                return fail
            while i < n and buf[i] > 32:
                i += 1
            continue
        else:
            return fail
        i += 1
    return True, labels[:row], lines[:row], indptr[: row + 1], indices[:nnz], values[:nnz]
