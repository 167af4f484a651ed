"""The model server: SageMaker's container contract over the models given, in one ASGI app.

=====================================  ==========================================================
``GET /ping``                          200 once the models are loaded (they load before the
                                       server listens)
``POST /invocations``                  the answers of the one model served
``POST /models/{name}/invocations``    the answers of model ``name`` (also ``.../invoke``,
                                       as SageMaker's multi-model containers are asked)
``GET /models``                        the models served, with their algorithms (and versions)
``GET /metrics``                       Prometheus: requests, latency, rows per model call, swaps
=====================================  ==========================================================

A model given as a continuous training's output follows its published versions
(:mod:`.versions`): every answer from it names its version in :data:`VERSION_HEADER`.

A request that cannot be answered as sent is a 4xx with a JSON body
``{"error": message, "row": ..., "field": ...}`` (row and field where the error has them);
the server never stops on a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from streamfit.core.model import Model
from streamfit.errors import DataError, StreamfitError
from streamfit.serving.batching import MicroBatcher, predict_rows
from streamfit.serving.codecs import (
    ANSWER_TYPES,
    BODY_NAME,
    SERIES_ANSWER_TYPES,
    decode_rows,
    encode_answer,
    negotiate,
    read_body,
    request_format,
)
from streamfit.serving.errors import PayloadTooLarge, RequestError, UnknownModel
from streamfit.serving.forecasts import forecast, read_series
from streamfit.serving.metrics import UNKNOWN_MODEL, ServingMetrics
from streamfit.serving.models import ServedModel
from streamfit.serving.security import Guard
from streamfit.serving.versions import VersionWatcher

__all__ = ["VERSION_HEADER", "ServeSettings", "create_app", "error_answer"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The header naming the version of a followed model that answered.
VERSION_HEADER = "X-Streamfit-Model-Version"

#: Bodies larger than this are parsed in a worker thread, so that the event loop goes on
#: taking requests meanwhile; smaller ones cost less than the hand-over.
_PARSE_INLINE_BYTES = 64 << 10


#: FastAPI's own OpenTelemetry (0.16x) asks the environment whether a provider is set on
#: every request: a tenth of the server's CPU on one-row requests, for spans nobody collects
#: (the server counts its own metrics). Off where this FastAPI has it.
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


@dataclass(frozen=True)
class ServeSettings:
    """How the server batches and what it accepts."""

    #: How long the first request of a batch waits for others; 0 turns batching off.
    batch_window_ms: float = 2.0
    #: A batch is answered at once when its requests hold this many rows.
    max_batch_rows: int = 4096
    #: The most rows one request may hold.
    max_request_rows: int = 100_000
    #: The largest request body (SageMaker's real-time invocation limit).
    max_body_bytes: int = 6 << 20
    #: When set, every route but ``/ping`` needs ``Authorization: Bearer <token>``.
    token: str | None = field(default=None, repr=False)
    #: The Host names answered (:mod:`streamfit.serving.security`); None: any.
    allowed_hosts: frozenset[str] | None = None
    #: How often a followed model's ``latest`` link is read, in seconds.
    poll_seconds: float = 0.5
    #: Where a new version of a followed model is loaded.
    device: str = "cpu"


def error_answer(exc: StreamfitError) -> JSONResponse:
    """The 4xx answer to a request refused with ``exc``: its message, and for a bad row the
    row and field (as the reader counts them: lines of CSV and JSON Lines, records of RecordIO,
    instances of JSON, from 1)."""
    body: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, DataError):
        body.update(row=exc.row, field=exc.field)
    return JSONResponse(body, status_code=exc.status if isinstance(exc, RequestError) else 400)


class _ModelServer(FastAPI):
    """FastAPI, with POSTs to the invocation routes handed straight to :attr:`lane`."""

    lane: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.lane is not None and scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path == "/invocations" or (
                path.startswith("/models/")
                and path.count("/") == 3
                and path.endswith(("/invocations", "/invoke"))
            ):
                await self.lane(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(models: Sequence[ServedModel], settings: ServeSettings | None = None) -> FastAPI:
    """The app answering for ``models``; run it under uvicorn (``streamfit serve``)."""
    settings = settings or ServeSettings()
    # The one place a followed model's version is swapped: a request reads its entry once.
    by_name = {m.name: m for m in models}
    names = list(by_name)
    metrics = ServingMetrics()
    batchers: dict[str, MicroBatcher] = {}
    if settings.batch_window_ms > 0:
        # A forecaster's requests each carry their own configuration: not batched together.
        for m in (m for m in models if m.model.input_series() is None):
            batchers[m.name] = MicroBatcher(
                settings.batch_window_ms / 1000,
                settings.max_batch_rows,
                settings.max_request_rows,
                metrics.batch_rows.labels(model=m.name).observe,
            )

    def swapped(name: str, ok: bool) -> None:
        (metrics.swaps if ok else metrics.swap_failures).labels(model=name).inc()

    watchers = [
        VersionWatcher(by_name, m.name, settings.poll_seconds, settings.device, swapped)
        for m in models
        if m.link is not None
    ]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for b in batchers.values():
            b.start()
        tasks = [asyncio.create_task(w.run()) for w in watchers]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            for b in batchers.values():
                await b.stop()

    # No /docs or /redoc: their pages load Swagger's and ReDoc's scripts from a CDN.
    app = _ModelServer(
        title="streamfit model server",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        **_NO_TELEMETRY,
    )
    app.add_middleware(Guard, token=settings.token, allowed_hosts=settings.allowed_hosts)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    async def answer(served: ServedModel, request: Request) -> Response:
        forecaster = served.model.input_series() is not None
        answers = SERIES_ANSWER_TYPES if forecaster else ANSWER_TYPES
        answer_type = negotiate(request.headers.get("accept"), answers)
        content_type = request.headers.get("content-type")
        request_format(content_type)  # refused before the body is read
        data = await _read_body(request, settings.max_body_bytes)
        batcher = batchers.get(served.name)
        if forecaster:
            series = await _off_loop(data, read_series, data, content_type)
            records = await run_in_threadpool(
                forecast, served.model, series, settings.max_request_rows
            )
            metrics.batch_rows.labels(model=served.name).observe(len(records))
        elif batcher is not None:
            body = await _off_loop(data, read_body, data, content_type)
            records = await batcher.predict(served.model, body)
        else:
            records = await run_in_threadpool(
                _answer_alone, served.model, data, content_type, settings.max_request_rows
            )
            metrics.batch_rows.labels(model=served.name).observe(len(records))
        return Response(encode_answer(records, answer_type), media_type=answer_type)

    async def invoke(served: ServedModel | None, request: Request, name: str) -> Response:
        start = time.perf_counter()
        label = served.name if served is not None else UNKNOWN_MODEL
        try:
            if served is None:
                raise UnknownModel(f"no model named {name!r} (served: {', '.join(by_name)})")
            response = await answer(served, request)
        except StreamfitError as exc:
            response = error_answer(exc)
        except Exception:
            log.exception("%s: prediction failed", label)
            response = JSONResponse({"error": "internal error: see the server's log"}, 500)
        if served is not None and served.version is not None:
            response.headers[VERSION_HEADER] = served.version
        metrics.requests.labels(model=label, status=str(response.status_code)).inc()
        metrics.latency.labels(model=label).observe(time.perf_counter() - start)
        return response

    @app.get("/ping")
    async def ping() -> dict[str, Any]:
        return {"status": "ok", "models": names}

    @app.get("/models")
    async def list_models() -> dict[str, Any]:
        return {
            "models": [
                {
                    "name": m.name,
                    "algorithm": m.model.algorithm,
                    "path": str(m.path),
                    "version": m.version,
                }
                for m in by_name.values()
            ]
        }

    # Plain Starlette routes: the body is read raw, so FastAPI's parameter solving would only
    # add to every request's cost (a fifth of the server's CPU for a one-row request).
    async def invocations(request: Request) -> Response:
        if len(names) != 1:
            exc = RequestError(
                f"{len(names)} models are served: POST /models/NAME/invocations "
                f"({', '.join(names)})"
            )
            return error_answer(exc)
        return await invoke(by_name[names[0]], request, names[0])

    async def model_invocations(request: Request) -> Response:
        name = request.path_params["name"]
        return await invoke(by_name.get(name), request, name)

    routes = [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/models/{name}/invocations", model_invocations, methods=["POST"]),
        # The route SageMaker's multi-model containers are asked on.
        Route("/models/{name}/invoke", model_invocations, methods=["POST"]),
    ]
    # First among the routes: every request is matched against those before its own.
    app.router.routes[:0] = routes
    # And answered past FastAPI's middleware: its layers cost a one-row request a quarter of
    # the server's CPU, for errors that invoke() already answers.
    app.lane = Guard(Router(routes), token=settings.token, allowed_hosts=settings.allowed_hosts)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = f"{BODY_NAME}: larger than the server's limit of {limit:,} bytes"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(too_large)
    chunks, size = [], 0
    async for chunk in request.stream():  # a chunked body has no length to check first
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


async def _off_loop(data: bytes, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, in a worker thread when ``data`` is large enough to hold the loop up."""
    if len(data) <= _PARSE_INLINE_BYTES:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


def _answer_alone(
    model: Model, data: bytes, content_type: str | None, max_rows: int
) -> list[dict[str, Any]]:
    rows = decode_rows(model, read_body(data, content_type), max_rows)
    return predict_rows(model, [rows])[0]
