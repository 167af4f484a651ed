"""``streamfit train`` and ``streamfit finalize``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from streamfit.cli.options import data_options, handle_errors, hp_option, print_json
from streamfit.data.messages import parse_seconds
from streamfit.fitting import train
from streamfit.training.inference import finalize, finalize_sweep

__all__ = ["finalize_command", "print_metrics", "print_sweep", "train_command"]


def print_sweep(rows: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            *(
                f"{row[c]:,.6g}" if isinstance(row.get(c), float) else str(row.get(c, ""))
                for c in columns
            )
        )
    Console().print(table)


def print_metrics(metrics: dict[str, float], title: str = "metrics") -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:,.6g}" if isinstance(value, float) else str(value))
    Console().print(table)


@click.command("train")
@click.argument("algorithm")
@click.option(
    "--train", "train_uri", required=True, help="Training data URI (file, folder, glob, -, SQL)."
)
@click.option("--validation", default=None, help="Validation data URI.")
@click.option("--test", default=None, help="Test data URI.")
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Output folder.")
@hp_option
@click.option(
    "--checkpoint-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write checkpoints here, and resume from the latest one found.",
)
@click.option(
    "--checkpoint-seconds",
    type=float,
    default=60.0,
    show_default=True,
    help="Checkpoint at most this often (with --checkpoint-dir).",
)
@click.option(
    "--checkpoint-batches", type=int, default=None, help="Also checkpoint every N batches."
)
@click.option(
    "--init-state",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Continue training from an earlier job's state, on new data.",
)
@click.option(
    "--epochs",
    type=int,
    default=None,
    help="Passes over the training data (default: the epochs hyperparameter, 1).",
)
@data_options
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option(
    "--sweep",
    default=None,
    metavar="NAME=A..B|V1,V2",
    help="Also write one model per value of a post-training hyperparameter, from this one "
    "pass, measured on the test (else validation) channel: e.g. k=2..40.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Train on N Ray workers, each on a disjoint shard of --train (files, Parquet row "
    "groups or byte ranges).",
)
@click.option(
    "--ray-address",
    default=None,
    help="Ray cluster to run the workers on (host:port, ray://..., auto); default: start a "
    "local Ray.",
)
@click.option(
    "--sync",
    is_flag=True,
    help="SGD algorithms: average all workers' states every --exchange-every batches instead "
    "of an asynchronous parameter server.",
)
@click.option(
    "--exchange-every",
    type=click.IntRange(min=1),
    default=None,
    help="Batches between a worker's pushes to the parameter server, or between averages "
    "(--sync); default 4.",
)
@click.option(
    "--publish-every",
    default=None,
    metavar="DURATION",
    help="Train continuously: every DURATION (60s, 5m), on SIGTERM and at the end, a "
    "checkpoint and a new model version in OUTPUT/models/<version>/, OUTPUT/models/latest "
    "pointing at it.",
)
@click.option(
    "--keep-versions",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Published versions kept (with --publish-every).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@handle_errors
def train_command(
    algorithm: str,
    train_uri: str,
    validation: str | None,
    test: str | None,
    output: Path,
    hyperparameters: dict[str, str],
    checkpoint_dir: Path | None,
    checkpoint_seconds: float,
    checkpoint_batches: int | None,
    init_state: Path | None,
    epochs: int | None,
    content_type: str | None,
    label_column: str | None,
    on_bad_rows: Any,
    device: str,
    auxiliary: str | None,
    stop_words: bool | None,
    progress: bool | None,
    sweep: str | None,
    workers: int | None,
    ray_address: str | None,
    sync: bool,
    exchange_every: int | None,
    publish_every: str | None,
    keep_versions: int,
    as_json: bool,
) -> None:
    """Train ALGORITHM (e.g. linear-learner) on --train; write the model, the final state and
    metrics.json to --output. SIGTERM checkpoints and exits with code 75."""
    result = train(
        algorithm,
        train_uri,
        validation=validation,
        test=test,
        hyperparameters=hyperparameters,
        output=output,
        checkpoint_dir=checkpoint_dir,
        checkpoint_seconds=checkpoint_seconds,
        checkpoint_batches=checkpoint_batches,
        init_state=init_state,
        epochs=epochs,
        device=device,
        content_type=content_type,
        label_column=label_column,
        on_bad_rows=on_bad_rows,
        progress=progress,
        sweep=sweep,
        workers=workers,
        ray_address=ray_address,
        sync=sync,
        exchange_every=exchange_every,
        auxiliary=auxiliary,
        stop_words=stop_words,
        publish_every=None
        if publish_every is None
        else parse_seconds(publish_every, "--publish-every"),
        keep_versions=keep_versions,
    )
    table = [p.row() for p in result.sweep]
    if as_json:
        print_json({**result.metrics, "sweep": table} if table else result.metrics)
    else:
        print_metrics(result.metrics, f"{algorithm} -> {output}")
        if table:
            print_sweep(table, f"sweep: one model per value in {output / 'sweep'}")


@click.command("finalize")
@click.argument("state_dir", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--output", required=True, type=click.Path(path_type=Path), help="Model folder to write."
)
@hp_option
@click.option(
    "--sweep",
    default=None,
    metavar="NAME=A..B|V1,V2",
    help="One model per value (in OUTPUT/sweep/), e.g. k=2..40.",
)
@click.option(
    "--evaluate",
    "evaluate_uri",
    default=None,
    help="Measure the sweep's models on this data (one read for all of them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the model's metadata as JSON.")
@handle_errors
def finalize_command(
    state_dir: Path,
    output: Path,
    hyperparameters: dict[str, str],
    sweep: str | None,
    evaluate_uri: str | None,
    as_json: bool,
) -> None:
    """A new model from a saved state with other post-training hyperparameters (no data read),
    e.g. --hp binary_classifier_model_selection_criteria=f_beta, or many with --sweep."""
    if sweep is None:
        model = finalize(state_dir, output, **hyperparameters)
        if as_json:
            print_json(model.meta)
        else:
            click.echo(f"model written to {output}")
        return
    table = finalize_sweep(state_dir, output, sweep, evaluate_uri, **hyperparameters)
    if as_json:
        print_json(table)
    else:
        print_sweep(table, f"sweep: one model per value in {output / 'sweep'}")
