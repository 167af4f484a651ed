"""What a request reaches of the application: its job manager and the manager's store (set by
:func:`streamfit.server.app.create_app`)."""

from __future__ import annotations

from typing import cast

from starlette.requests import HTTPConnection

from streamfit.jobs.manager import JobManager
from streamfit.jobs.store import Store

__all__ = ["manager_of", "store_of"]


def manager_of(request: HTTPConnection) -> JobManager:
    """The application's job manager: stop, retry and logs go through it, as the CLI's do."""
    return cast(JobManager, request.app.state.manager)


def store_of(request: HTTPConnection) -> Store:
    """The store the application reads (the scheduler's)."""
    return manager_of(request).store
