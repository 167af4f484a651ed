"""Who may reach a server: shared by the model server (``streamfit serve``) and the job
server (``streamfit server``), and kept free of both so that neither loads the other's
dependencies (the model server's load PyTorch).

A web page the user visits can make the browser post to ``http://127.0.0.1:8080``; with DNS
rebinding it can also read the answers, under a name of its own that resolves to 127.0.0.1.
A Host allow-list refuses such names. Binding another address serves the network: then a
token is required.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from streamfit.errors import ConfigError

__all__ = [
    "LOOPBACK_NAMES",
    "MIN_TOKEN_LENGTH",
    "TOKEN_VARIABLE",
    "host_name",
    "is_loopback",
    "read_token",
]

#: Where the token is read from when no ``--token-file`` is given.
TOKEN_VARIABLE = "STREAMFIT_API_TOKEN"
#: The Host names a server bound to loopback answers to.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: Shorter tokens are refused: they can be guessed.
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def read_token(
    token_file: Path | None,
    environ: Mapping[str, str] = os.environ,
    variable: str = TOKEN_VARIABLE,
) -> str | None:
    """The token from ``token_file``, else from the environment ``variable``; None if
    neither."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{token_file}: cannot read the token ({exc})") from exc
        where = str(token_file)
    elif environ.get(variable):
        token, where = environ[variable].strip(), variable
    else:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        # The token itself is never shown: only its length.
        raise ConfigError(
            f"{where}: the token has {len(token)} characters; use at least {MIN_TOKEN_LENGTH} "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def host_name(header: str) -> str:
    """The name of a Host header, without its port.

    >>> host_name("127.0.0.1:8080"), host_name("[::1]:8080"), host_name("Localhost")
    ('127.0.0.1', '::1', 'localhost')
    """
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header
