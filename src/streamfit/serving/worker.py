"""``streamfit serve --workers N``: the app built in each of uvicorn's worker processes.

uvicorn starts a worker by importing an app by name, so the command hands the workers its
models and settings through :data:`CONFIG_VARIABLE` (the token through its file or
``STREAMFIT_API_TOKEN``, never the variable). Each worker loads the models and batches its own
requests; their metrics meet in ``PROMETHEUS_MULTIPROC_DIR`` (see :mod:`.metrics`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI

from streamfit.errors import ConfigError
from streamfit.serving.app import ServeSettings, create_app
from streamfit.serving.models import load_served
from streamfit.serving.security import read_token

__all__ = ["CONFIG_VARIABLE", "app_from_environment", "worker_environment"]

CONFIG_VARIABLE = "STREAMFIT_SERVE_WORKER"


def worker_environment(
    models: Sequence[str], device: str, settings: ServeSettings, token_file: Path | None
) -> str:
    """What :func:`app_from_environment` reads: the models, device and settings, as JSON."""
    fields = dataclasses.asdict(settings)
    fields.pop("token")  # re-read by each worker from where the command read it
    hosts = fields.pop("allowed_hosts")
    doc = {
        "models": list(models),
        "device": device,
        "settings": fields,
        "allowed_hosts": None if hosts is None else sorted(hosts),
        "token_file": None if token_file is None else str(token_file),
    }
    return json.dumps(doc)


def app_from_environment() -> FastAPI:
    """The app :data:`CONFIG_VARIABLE` describes (a worker's, under ``uvicorn --factory``)."""
    raw = os.environ.get(CONFIG_VARIABLE)
    if not raw:
        raise ConfigError(f"{CONFIG_VARIABLE} is not set: start workers with streamfit serve")
    doc = json.loads(raw)
    token_file = doc["token_file"]
    hosts = doc["allowed_hosts"]
    settings = ServeSettings(
        **doc["settings"],
        token=read_token(None if token_file is None else Path(token_file)),
        allowed_hosts=None if hosts is None else frozenset(hosts),
    )
    return create_app(load_served(doc["models"], doc["device"]), settings)
