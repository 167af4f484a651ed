"""``streamfit server``: the JSON API and dashboard over the job store, under uvicorn."""

from __future__ import annotations

from pathlib import Path

import click

from streamfit.cli.options import allow_host_option, handle_errors

__all__ = ["server_command"]


@click.command("server")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="STREAMFIT_HOME",
    default=None,
    help="The job manager's folder, as the scheduler's [env: STREAMFIT_HOME; default: "
    "~/.streamfit].",
)
@click.option(
    "--store",
    "--database-url",
    "database_url",
    envvar="STREAMFIT_DATABASE_URL",
    default=None,
    help="The store's URL (SQLite or PostgreSQL) instead of the home folder's SQLite file "
    "[env: STREAMFIT_DATABASE_URL].",
)
@click.option("--host", default="127.0.0.1", help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, help="Port to listen on.")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A file holding the token that allows everything (default: STREAMFIT_API_TOKEN); a "
    "token is required to bind other than loopback.",
)
@click.option(
    "--read-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A file holding a token that allows reading only (default: STREAMFIT_API_READ_TOKEN).",
)
@allow_host_option
@handle_errors
def server_command(
    home: Path | None,
    database_url: str | None,
    host: str,
    port: int,
    token_file: Path | None,
    read_token_file: Path | None,
    allow_host: tuple[str, ...],
) -> None:
    """Serve the job store: a JSON API under /api (its schema at /openapi.json) and the
    dashboard. Only this machine unless --host says otherwise, which requires a token."""
    import uvicorn

    from streamfit.jobs.database import shown_url
    from streamfit.jobs.settings import Settings
    from streamfit.server.app import create_app
    from streamfit.server.security import load_security

    security = load_security(
        host, token_file=token_file, read_token_file=read_token_file, allow_hosts=allow_host
    )
    settings = Settings.load(home=home, database_url=database_url)
    app = create_app(settings, security=security)
    store = app.state.manager.store
    shown = f"[{host}]" if ":" in host else host
    access = (
        "no token: everything allowed"
        if security.open
        else "tokens: "
        + ", ".join(
            name
            for name, token in (("write", security.write_token), ("read", security.read_token))
            if token is not None
        )
    )
    click.echo(f"store {shown_url(store.url)}", err=True)
    click.echo(f"listening on http://{shown}:{port} ({access})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
