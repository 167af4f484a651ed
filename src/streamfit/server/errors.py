"""The server's own errors: each is a request it refuses, with the HTTP status to answer.

    ConfigError              (streamfit.errors)
     └── ApiError            400: a request that cannot be answered as sent
          ├── Forbidden      403: a token that does not allow this (read-only), or a failed
          │                  CSRF or Origin check
          └── Unauthorized   401: no token, or a wrong one

The job manager's errors map too (:func:`streamfit.server.api.status_of`): a job that does not
exist is 404, a status change the table forbids 409, a spec that cannot be used 422.
"""

from __future__ import annotations

from typing import ClassVar

from streamfit.errors import ConfigError

__all__ = ["ApiError", "Forbidden", "Unauthorized"]


class ApiError(ConfigError):
    """A request that cannot be answered as sent; ``status`` is the HTTP status to answer."""

    status: ClassVar[int] = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403
