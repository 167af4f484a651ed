"""The model server's own errors: each is a request it refuses, with the HTTP status to answer.

    ConfigError                  (streamfit.errors)
     └── RequestError            400: a request that cannot be answered as sent
          ├── UnknownModel       404: no model is served under that name
          ├── NotAcceptable      406: no answer type the ``Accept`` header allows
          ├── PayloadTooLarge    413: a body or a row count over the server's limit
          └── UnsupportedMediaType  415: a ``Content-Type`` the server does not read

A :class:`~streamfit.errors.DataError` (a bad row) is answered 400 too, with its row and field;
see :func:`streamfit.serving.app.error_answer`.
"""

from __future__ import annotations

from typing import ClassVar

from streamfit.errors import ConfigError

__all__ = [
    "NotAcceptable",
    "PayloadTooLarge",
    "RequestError",
    "UnknownModel",
    "UnsupportedMediaType",
]


class RequestError(ConfigError):
    """A request that cannot be answered as sent; ``status`` is the HTTP status to answer."""

    status: ClassVar[int] = 400


class UnknownModel(RequestError):
    status = 404


class NotAcceptable(RequestError):
    status = 406


class PayloadTooLarge(RequestError):
    status = 413


class UnsupportedMediaType(RequestError):
    status = 415
