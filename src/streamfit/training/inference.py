"""Batch predictions and post-training finalisation: the inference side of a saved job."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from streamfit.core.model import Model
from streamfit.core.registry import get_algorithm, load_model
from streamfit.core.state import State
from streamfit.data.auxiliary import TEXT_KEY, text_settings
from streamfit.data.batcher import Batcher
from streamfit.data.checks import OnBadRows
from streamfit.data.destination import open_output, refuse_inputs
from streamfit.data.source import Source, SourceOptions, open_source
from streamfit.errors import ConfigError
from streamfit.training.schema import with_input_schema
from streamfit.training.sweep import parse_sweep, run_sweep, write_sweep

__all__ = [
    "finalize",
    "finalize_sweep",
    "model_source",
    "predict",
    "predict_records",
    "write_records",
]


def _model(model: Model | str | os.PathLike[str], device: str) -> Model:
    return model.to(device) if isinstance(model, Model) else load_model(model, device)


def predict_records(
    model: Model | str | os.PathLike[str],
    input: str | Source,
    *,
    content_type: str | None = None,
    labelled: bool = False,
    on_bad_rows: OnBadRows = "error",
    batch_size: int = 10_000,
    device: str = "cpu",
    auxiliary: str | os.PathLike[str] | None = None,
    inference_config: Mapping[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """One answer per input row, shaped as SageMaker's (``{"score": .., "predicted_label": ..}``).

    ``labelled`` says the input rows carry a label (CSV: first column), which is ignored.
    ``auxiliary`` (a ``vocab.txt`` or its folder) gives raw text its ids, where the model does
    not record a vocabulary; one it records is used without it. Every document gets an answer,
    an empty one too: the bag-of-words checks are for training channels. A forecaster reads
    series and answers each with a forecast of the steps after its end, under
    ``inference_config`` (SageMaker's ``num_samples``, ``output_types``, ``quantiles``; else
    the ``DEEPAR_INFERENCE_CONFIG`` variable's, as SageMaker's batch transform reads it).
    """
    m = _configured(_model(model, device), inference_config)
    source = model_source(m, input, content_type, labelled, on_bad_rows, auxiliary)
    return _records(m, source, batch_size)


def model_source(
    m: Model,
    input: str | Source,
    content_type: str | None,
    labelled: bool,
    on_bad_rows: OnBadRows,
    auxiliary: str | os.PathLike[str] | None = None,
) -> Source:
    """``input`` read as ``m`` reads rows to predict: its width, hashing, vocabulary, series
    and named columns (the model server parses request bodies with it)."""
    width = m.meta.get("n_features")
    # Raw text is counted as the model's training counted it.
    vocabulary, stop_words = text_settings(auxiliary, None, m.meta.get(TEXT_KEY), width)
    options = SourceOptions(
        content_type=content_type,
        labelled=labelled,
        on_bad_rows=on_bad_rows,
        hash_features=width if m.meta.get("hash_features") else None,
        vocabulary=vocabulary,
        stop_words=stop_words,
        series=m.input_series(),
    )
    # Named columns are read by name, in the order the model was trained on.
    return open_source(input, options).expecting(m.meta.get("input_schema"))


#: SageMaker's batch transform reads a forecaster's inference configuration from here.
INFERENCE_CONFIG_VARIABLE = "DEEPAR_INFERENCE_CONFIG"


def _configured(m: Model, config: Mapping[str, Any] | None) -> Model:
    """``m`` under ``config``, else under the environment's configuration (forecasters)."""
    if config is None and m.input_series() is not None:
        raw = os.environ.get(INFERENCE_CONFIG_VARIABLE)
        if raw:
            try:
                config = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"{INFERENCE_CONFIG_VARIABLE} is not JSON: {exc}") from exc
            if not isinstance(config, dict):
                raise ConfigError(f"{INFERENCE_CONFIG_VARIABLE} must be a JSON object")
    return m.configured(config)


def _records(m: Model, source: Source, batch_size: int) -> Iterator[dict[str, Any]]:
    with torch.inference_mode():
        batches = Batcher(source, batch_size, device=m.device, n_features=m.meta.get("n_features"))
        for batch in batches:
            if batch.n_rows:
                yield from m.records(m.predict(batch.features))


def _csv_row(record: Mapping[str, Any]) -> list[Any]:
    row: list[Any] = []
    for value in record.values():
        row.extend(value if isinstance(value, list) else [value])
    return row


def predict(
    model: Model | str | os.PathLike[str],
    input: str | Source,
    output: str | os.PathLike[str] | BinaryIO,
    *,
    accept: str = "jsonl",
    content_type: str | None = None,
    labelled: bool = False,
    on_bad_rows: OnBadRows = "error",
    batch_size: int = 10_000,
    device: str = "cpu",
    auxiliary: str | os.PathLike[str] | None = None,
    inference_config: Mapping[str, Any] | None = None,
) -> int:
    """Write predictions for every row of ``input`` to ``output`` as JSON Lines or CSV.

    Returns the number of rows predicted. Options are those of :func:`predict_records`. A
    file ``output`` that is an input (or the model) is refused before anything is written,
    and appears only when complete (see :mod:`streamfit.data.destination`).
    """
    fmt = {"application/jsonlines": "jsonl", "text/csv": "csv"}.get(accept, accept)
    if fmt not in ("jsonl", "csv"):
        raise ConfigError(f"accept must be jsonl or csv, got {accept!r}")
    m = _configured(_model(model, device), inference_config)
    source = model_source(m, input, content_type, labelled, on_bad_rows, auxiliary)
    if isinstance(output, str | os.PathLike):
        model_files = [] if isinstance(model, Model) else _files(Path(model))
        refuse_inputs(os.fspath(output), [source], model_files)
        with open_output(os.fspath(output), compression=None) as out:
            return write_records(_records(m, source, batch_size), out, fmt)
    return write_records(_records(m, source, batch_size), output, fmt)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else [folder]


def write_records(records: Iterable[dict[str, Any]], out: BinaryIO, fmt: str) -> int:
    """Write ``records`` to ``out`` as ``jsonl`` or ``csv`` (a header, then a row each, list
    values spread over ``name_0, name_1, ...``); returns how many were written."""
    rows = 0
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text) if fmt == "csv" else None
    for record in records:
        if writer is not None:
            if rows == 0:
                writer.writerow(_csv_header(record))
            writer.writerow(_csv_row(record))
        else:
            text.write(json.dumps(record) + "\n")
        rows += 1
    text.flush()
    text.detach()
    return rows


def _csv_header(record: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for key, value in record.items():
        if isinstance(value, list):
            names.extend(f"{key}_{i}" for i in range(len(value)))
        else:
            names.append(key)
    return names


def finalize(
    state: State | str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    **post_training: Any,
) -> Model:
    """A model from a saved state with other post-training hyperparameters; no data is read.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from streamfit import train
    >>> from streamfit.datagen import linear_task, write_batches
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = write_batches(folder / "train.parquet", linear_task(5, seed=1).blocks(2000))
    >>> hp = {"predictor_type": "binary_classifier"}
    >>> _ = train("linear-learner", str(folder / "train.parquet"), hyperparameters=hp,
    ...           output=folder / "job", progress=False)
    >>> model = finalize(folder / "job" / "state", folder / "job" / "model-f1",
    ...                  binary_classifier_model_selection_criteria="f_beta")
    >>> sorted(p.name for p in (folder / "job" / "model-f1").iterdir())
    ['model.json', 'model.safetensors']
    """
    st = state if isinstance(state, State) else State.load(state)
    algo = get_algorithm(st.algorithm)(st.hyperparameters)
    model = with_input_schema(algo.finalize(st, **post_training), st)
    if output is not None:
        model.save(output)
    return model


def finalize_sweep(
    state: State | str | os.PathLike[str],
    output: str | os.PathLike[str],
    sweep: str,
    evaluate: str | Source | None = None,
    **post_training: Any,
) -> list[dict[str, Any]]:
    """One model per value of ``sweep`` (``"k=2..40"``) under ``output/sweep/``, measured in
    one read of ``evaluate`` if given; returns the table also written to ``sweep.json``."""
    st = state if isinstance(state, State) else State.load(state)
    algo = get_algorithm(st.algorithm)(st.hyperparameters)
    name, values = parse_sweep(sweep)
    batches = None
    if evaluate is not None:
        vocabulary, stop_words = text_settings(
            None, None, st.inputs.get(TEXT_KEY), algo.expected_features()
        )
        options = SourceOptions(
            labelled=algo.supervised,
            max_index=algo.expected_features(),
            hash_features=algo.hash_space(),
            vocabulary=vocabulary,
            stop_words=stop_words,
            bag_of_words=algo.bag_of_words(),
        )
        source = open_source(evaluate, options).expecting(st.inputs.get("schema"))
        batches = Batcher(source, algo.mini_batch_size, n_features=st.n_features)
    points = run_sweep(algo, st, name, values, batches, "evaluate", **post_training)
    write_sweep(points, output)
    return [p.row() for p in points]
