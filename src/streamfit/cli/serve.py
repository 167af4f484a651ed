"""``streamfit serve``: model endpoints in SageMaker's container contract."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from streamfit.cli.options import allow_host_option, handle_errors
from streamfit.errors import ConfigError

if TYPE_CHECKING:
    from streamfit.serving import ServeSettings

__all__ = ["serve_command"]


@click.command("serve")
@click.argument("models", nargs=-1, required=True, metavar="MODEL [MODEL ...]")
@click.option("--host", default="127.0.0.1", help="Address to listen on (loopback by default).")
@click.option("--port", type=int, default=8080, help="Port to listen on (SageMaker's).")
@click.option(
    "--batch-window-ms",
    type=click.FloatRange(min=0),
    default=2.0,
    help="How long a request waits for others to be predicted with it; 0: no batching.",
)
@click.option(
    "--max-batch-rows",
    type=click.IntRange(min=1),
    default=4096,
    help="A batch is predicted at once when it holds this many rows.",
)
@click.option(
    "--max-request-rows", type=click.IntRange(min=1), default=100_000, help="Rows per request."
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=6 << 20,
    help="The largest request body (SageMaker's limit: 6 MiB).",
)
@click.option("--device", default="cpu", help="cpu, cuda or cuda:N.")
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.01),
    default=0.5,
    help="How often a followed training output's models/latest is checked for a new version.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    help="Server processes, each with the models loaded and batching its own requests: one "
    "process's event loop uses one core.",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A file holding the token every request but /ping must send as 'Authorization: "
    "Bearer TOKEN' (default: STREAMFIT_API_TOKEN); required to bind other than loopback.",
)
@allow_host_option
@handle_errors
def serve_command(
    models: tuple[str, ...],
    host: str,
    port: int,
    batch_window_ms: float,
    max_batch_rows: int,
    max_request_rows: int,
    max_body_bytes: int,
    device: str,
    poll_seconds: float,
    token_file: Path | None,
    allow_host: tuple[str, ...],
    workers: int,
) -> None:
    """Serve the models in MODEL folders (PATH, or NAME=PATH): GET /ping, POST /invocations
    (one model) or /models/NAME/invocations, GET /metrics.

    A MODEL that is a continuous training's output folder (train --publish-every), or its
    models/ folder, is served at the version models/latest names and follows it as new
    versions are published; answers name their version in X-Streamfit-Model-Version."""
    import uvicorn

    from streamfit.serving import ServeSettings, create_app, load_served
    from streamfit.serving.security import LOOPBACK_NAMES, is_loopback, read_token

    token = read_token(token_file)
    loopback = is_loopback(host)
    if not loopback and token is None:
        raise ConfigError(
            f"--host {host} serves the network: set STREAMFIT_API_TOKEN or --token-file"
        )
    names = {h.lower() for h in allow_host}
    served = load_served(models, device)
    settings = ServeSettings(
        batch_window_ms,
        max_batch_rows,
        max_request_rows,
        max_body_bytes,
        token=token,
        # A server on loopback answers only to loopback's names (DNS rebinding); one on the
        # network, to the names given, else to any (its token guards it).
        allowed_hosts=frozenset(LOOPBACK_NAMES | names) if loopback else frozenset(names) or None,
        poll_seconds=poll_seconds,
        device=device,
    )
    for m in served:
        follows = f", version {m.version}, following {m.link}" if m.link is not None else ""
        click.echo(f"serving {m.name} ({m.model.algorithm}) from {m.path}{follows}", err=True)
    guarded = " (bearer token required)" if token is not None else ""
    processes = f", {workers} worker processes" if workers > 1 else ""
    click.echo(f"listening on {host} port {port}{processes}{guarded}", err=True)
    if workers == 1:
        uvicorn.run(create_app(served, settings), host=host, port=port, log_level="warning")
        return
    del served  # each worker loads its own
    _run_workers(models, device, settings, token_file, workers, host, port)


def _run_workers(
    models: tuple[str, ...],
    device: str,
    settings: ServeSettings,
    token_file: Path | None,
    workers: int,
    host: str,
    port: int,
) -> None:
    import uvicorn

    from streamfit.serving.metrics import MULTIPROCESS_VARIABLE
    from streamfit.serving.worker import CONFIG_VARIABLE, worker_environment

    # The workers inherit both: their app's description, and where their metrics meet.
    os.environ[CONFIG_VARIABLE] = worker_environment(models, device, settings, token_file)
    own_folder = MULTIPROCESS_VARIABLE not in os.environ
    if own_folder:
        os.environ[MULTIPROCESS_VARIABLE] = tempfile.mkdtemp(prefix="streamfit-serve-metrics-")
    try:
        uvicorn.run(
            "streamfit.serving.worker:app_from_environment",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
        )
    finally:
        if own_folder:
            shutil.rmtree(os.environ[MULTIPROCESS_VARIABLE], ignore_errors=True)
