"""A forecaster's requests (DeepAR): SageMaker's series records, answered one request at a time.

``application/json`` is SageMaker's DeepAR request, ``{"instances": [{"start": ..., "target":
[...], "cat": [...], "dynamic_feat": [[...]]}], "configuration": {"num_samples": ...,
"output_types": [...], "quantiles": [...]}}``; ``application/jsonlines`` is one series a line
under the server's ``DEEPAR_INFERENCE_CONFIG``, as SageMaker's batch transform reads it. Each
request carries its own configuration, so requests are not batched together.
"""

from __future__ import annotations

import io
import json
from typing import Any

from streamfit.core.model import Model
from streamfit.data.source import PipeSource, SourceOptions
from streamfit.serving.codecs import BODY_NAME, Body, body_errors, json_instances, request_format
from streamfit.serving.errors import PayloadTooLarge, RequestError, UnsupportedMediaType
from streamfit.training.inference import predict_records

__all__ = ["SeriesRequest", "forecast", "read_series"]

SeriesRequest = tuple[Body, dict[str, Any] | None]


def read_series(data: bytes, content_type: str | None) -> SeriesRequest:
    """The series records of a body, as JSON Lines, and the configuration it gives.

    >>> body, config = read_series(
    ...     b'{"instances": [{"start": "2020-01-01", "target": [1, 2]}],'
    ...     b' "configuration": {"num_samples": 5}}', "application/json")
    >>> body.data, config
    (b'{"start": "2020-01-01", "target": [1, 2]}\\n', {'num_samples': 5})
    """
    fmt = request_format(content_type)
    if fmt == "jsonl":
        return Body("jsonl", data), None
    if fmt != "json":
        raise UnsupportedMediaType(
            f"a forecaster reads series records: application/json or application/jsonlines, "
            f"not {content_type!r}"
        )
    instances, configuration = json_instances(data)
    if configuration is not None and not isinstance(configuration, dict):
        raise RequestError(f"{BODY_NAME}: 'configuration' must be an object")
    lines = b"".join(json.dumps(item).encode() + b"\n" for item in instances)
    return Body("jsonl", lines, from_json=True), configuration


def forecast(model: Model, request: SeriesRequest, max_rows: int) -> list[dict[str, Any]]:
    """One forecast per series of ``request``, in SageMaker's DeepAR answer shape."""
    body, configuration = request
    if (body.lines or 0) > max_rows:
        raise PayloadTooLarge(f"{BODY_NAME}: more than {max_rows:,} series")
    with body_errors(body):
        source = PipeSource(BODY_NAME, io.BytesIO(body.data), SourceOptions())
        records = list(
            predict_records(model, source, content_type="jsonl", inference_config=configuration)
        )
    if not records:
        raise RequestError(f"{BODY_NAME}: no series to forecast")
    return records
