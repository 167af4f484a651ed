"""The job server's application (``streamfit server``): the JSON API (:mod:`.api`), signing in
(:mod:`.login`), the dashboard (:mod:`.dashboard`, where installed) and its static files,
behind the security middleware (:mod:`.security`), over the scheduler's store.

Requests run on a thread pool and each reads in one short transaction: SQLite's WAL lets
them read while a scheduler writes, and a write (submit, stop, retry) waits for the
scheduler's (the store's busy timeout) instead of failing with "database is locked".
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from streamfit import __version__
from streamfit.errors import ConfigError
from streamfit.jobs.errors import NoSuchJob, SpecError, StoreError, TransitionError
from streamfit.jobs.manager import JobManager
from streamfit.jobs.settings import Settings
from streamfit.server import api, login, tuning_api
from streamfit.server.errors import ApiError
from streamfit.server.security import Guard, Security
from streamfit.server.stats import DEFAULT_TTL, StatsCache

__all__ = ["STATIC", "create_app", "status_of"]

log = logging.getLogger(__name__)

#: The dashboard's assets (vendored: nothing is fetched from elsewhere).
STATIC = Path(__file__).with_name("static")


def status_of(exc: Exception) -> int:
    """The HTTP status a refused request is answered with."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, NoSuchJob):
        return 404
    if isinstance(exc, TransitionError):
        return 409
    if isinstance(exc, SpecError):
        return 422
    if isinstance(exc, StoreError):  # missing, unreachable, read-only: not the request's fault
        return 503
    return 400  # a ConfigError: an option or value that cannot be used


def create_app(
    settings: Settings | None = None,
    *,
    security: Security | None = None,
    manager: JobManager | None = None,
    stats_ttl: float = DEFAULT_TTL,
) -> FastAPI:
    """The application over the store ``settings`` name (the scheduler's: ``--home`` and
    ``--database-url``, as the ``jobs`` commands read them), or over ``manager``'s.
    ``security``: loopback only, no token, unless given. ``stats_ttl``: how old the trends
    shown may be (seconds; see :mod:`.stats`)."""
    owned = manager is None
    if manager is None:
        manager = JobManager.open(settings or Settings.load(), notifiers={})

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            manager.close()

    app = FastAPI(
        title="streamfit",
        version=__version__,
        summary="Training jobs: list, inspect, submit, stop, retry; their logs, curves, stats.",
        # The interactive docs load scripts from a CDN: the schema is at /openapi.json.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.security = security or Security()
    app.state.stats = StatsCache(manager.store, ttl=stats_ttl)

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))

    for kind in (ConfigError, NoSuchJob, TransitionError, SpecError, StoreError):
        app.add_exception_handler(kind, refused)
    app.include_router(api.router)
    app.include_router(tuning_api.router)
    app.include_router(login.router)
    if importlib.util.find_spec("streamfit.server.dashboard") is not None:
        from streamfit.server import dashboard

        app.include_router(dashboard.router)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, security=app.state.security)
    return app
