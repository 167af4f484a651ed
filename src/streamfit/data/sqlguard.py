"""What a SQL source may run: one query, never a statement that changes the database.

Two guards, as neither is enough alone. Before anything is sent, the text must be a single
statement (a ``;`` may only end it) whose first keyword, after comments and parentheses, is
one that reads: ``SELECT``, ``WITH``, ``VALUES`` or ``TABLE``. And the query runs where the
database itself refuses writes, since a query can still write: ``WITH d AS (DELETE ...)
SELECT``, or a function with side effects. :func:`read_only_statements` gives what makes a
session read-only for each dialect.

>>> check_query("-- recent rows\\nSELECT * FROM t WHERE s = 'a;b'; ")
>>> check_query("SELECT 1; DROP TABLE t")
Traceback (most recent call last):
...
streamfit.errors.ConfigError: more than one statement: a SQL source runs one query
"""

from __future__ import annotations

import re

from streamfit.errors import ConfigError

__all__ = ["QUERY_KEYWORDS", "check_query", "read_only_statements"]

#: First keywords of a statement that only reads.
QUERY_KEYWORDS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")  # PostgreSQL's $tag$ ... $tag$


def _skip_space(sql: str, i: int) -> int:
    """The index of the next character that is neither white space nor in a comment."""
    while i < len(sql):
        if sql[i].isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise ConfigError("an unterminated /* comment in the query")
            i = end + 2
        else:
            break
    return i


def _end_of_quoted(sql: str, i: int) -> int:
    """The index after the quoted text (string, identifier or dollar-quoted) at ``i``."""
    quote = sql[i]
    if quote == "$":
        tag = _DOLLAR.match(sql, i)
        assert tag is not None
        end = sql.find(tag.group(0), tag.end())
        if end < 0:
            raise ConfigError("an unterminated dollar-quoted string in the query")
        return end + len(tag.group(0))
    j = i + 1
    while True:
        j = sql.find(quote, j)
        if j < 0:
            raise ConfigError(f"an unterminated {quote} quote in the query")
        if sql.startswith(quote * 2, j):  # a doubled quote is the quote itself
            j += 2
            continue
        return j + 1


def check_query(sql: str) -> None:
    """A :class:`ConfigError` unless ``sql`` is a single statement that reads (see above)."""
    i = _skip_space(sql, 0)
    while i < len(sql) and sql[i] == "(":
        i = _skip_space(sql, i + 1)
    word = re.match(r"[A-Za-z_]+", sql[i:])
    keyword = word.group(0).upper() if word else sql[i : i + 10]
    if keyword not in QUERY_KEYWORDS:
        raise ConfigError(
            f"{keyword!r} is not a query: a SQL source runs one SELECT, WITH, VALUES or "
            "TABLE statement"
        )
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"`" or (ch == "$" and _DOLLAR.match(sql, i)):
            i = _end_of_quoted(sql, i)
        elif sql.startswith(("--", "/*"), i):
            i = _skip_space(sql, i)
        elif ch == ";":
            if _skip_space(sql, i + 1) < len(sql):
                raise ConfigError("more than one statement: a SQL source runs one query")
            return
        else:
            i += 1


def read_only_statements(dialect: str) -> list[str]:
    """Statements that make the query's transaction on a new connection of ``dialect``
    refuse writes, to run just before it (PostgreSQL's must open the transaction)."""
    if dialect == "sqlite":
        return ["PRAGMA query_only = ON"]
    if dialect == "postgresql":
        return ["SET TRANSACTION READ ONLY"]
    if dialect in ("mysql", "mariadb"):
        return ["SET SESSION TRANSACTION READ ONLY"]
    return []
