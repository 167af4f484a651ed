"""``streamfit predict`` and ``streamfit convert``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from streamfit.cli.options import auxiliary_option, handle_errors
from streamfit.data.destination import open_output, refuse_inputs
from streamfit.data.source import CONTENT_TYPES, SourceOptions, detect_format, open_source
from streamfit.data.writers import write
from streamfit.errors import ConfigError
from streamfit.training.inference import predict

__all__ = ["convert_command", "predict_command"]


@click.command("predict")
@click.argument("model_dir", type=click.Path(path_type=Path, exists=True))
@click.option("--input", "input_uri", required=True, help="Rows to predict (URI; - for stdin).")
@click.option("--output", default="-", show_default=True, help="Where to write (- for stdout).")
@click.option("--accept", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--content-type", default=None, help="Input format (default: from the file).")
@click.option(
    "--labelled", is_flag=True, help="Input rows carry a label (CSV: first column) to ignore."
)
@click.option(
    "--on-bad-rows", type=click.Choice(["error", "skip"]), default="error", show_default=True
)
@click.option("--batch-size", type=int, default=10_000, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@auxiliary_option
@click.option(
    "--inference-config",
    default=None,
    help="A forecaster's inference configuration, JSON: num_samples, output_types (mean, "
    'quantiles, samples), quantiles (e.g. \'{"num_samples": 50, "quantiles": ["0.5"]}\'); '
    "default: DEEPAR_INFERENCE_CONFIG, else SageMaker's batch defaults.",
)
@handle_errors
def predict_command(
    model_dir: Path,
    input_uri: str,
    output: str,
    accept: str,
    content_type: str | None,
    labelled: bool,
    on_bad_rows: Any,
    batch_size: int,
    device: str,
    auxiliary: str | None,
    inference_config: str | None,
) -> None:
    """Batch predictions of the model in MODEL_DIR, in SageMaker's answer shapes."""
    config = None
    if inference_config is not None:
        try:
            config = json.loads(inference_config)
        except ValueError as exc:
            raise ConfigError(f"--inference-config is not JSON: {exc}") from exc
        if not isinstance(config, dict):
            raise ConfigError("--inference-config must be a JSON object")
    rows = predict(
        model_dir,
        input_uri,
        output,
        accept=accept,
        content_type=content_type,
        labelled=labelled,
        on_bad_rows=on_bad_rows,
        batch_size=batch_size,
        device=device,
        auxiliary=auxiliary,
        inference_config=config,
    )
    if output != "-":
        click.echo(f"{rows:,} predictions written to {output}", err=True)


@click.command("convert")
@click.argument("input_uri")
@click.argument("output")
@click.option("--content-type", default=None, help="Input format (default: from the file).")
@click.option("--to", "to_format", default=None, help="Output format (default: from the name).")
@click.option("--label-column", default=None, help="Label column (CSV with header, Parquet, SQL).")
@click.option("--unlabelled", is_flag=True, help="Rows have no label.")
@click.option("--feature-dim", type=int, default=None, help="Number of features (sparse input).")
@click.option(
    "--on-bad-rows", type=click.Choice(["error", "skip"]), default="error", show_default=True
)
@handle_errors
def convert_command(
    input_uri: str,
    output: str,
    content_type: str | None,
    to_format: str | None,
    label_column: str | None,
    unlabelled: bool,
    feature_dim: int | None,
    on_bad_rows: Any,
) -> None:
    """Convert INPUT_URI to OUTPUT (csv, parquet, jsonl, libsvm, recordio)."""
    fmt = CONTENT_TYPES.get(to_format, to_format) if to_format else detect_format(output)
    source = open_source(
        input_uri,
        SourceOptions(
            content_type=content_type,
            label_column=label_column,
            labelled=not unlabelled,
            on_bad_rows=on_bad_rows,
            max_index=feature_dim,
        ),
    )
    refuse_inputs(output, [source])  # before the output is opened, which would empty it
    batches = (chunk.batch for chunk in source.read())
    with open_output(output) as f:
        rows = write(fmt, batches, f, feature_dim)
    click.echo(f"{rows:,} rows written to {output} ({fmt})", err=True)
