"""Request bodies in, answers out: SageMaker's content types and ``Accept`` negotiation.

Rows are read by the library's own readers, as ``streamfit predict`` reads them
(:func:`streamfit.training.inference.model_source`); ``application/json`` bodies in SageMaker's
``{"instances": [...]}`` form are handed to the JSON Lines reader one instance a line. Answers
are the model's ``records()``, as ``predict`` writes them (:func:`write_records`), and under
``{"predictions": [...]}`` for ``application/json``, as SageMaker's built-ins answer.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from streamfit.core.batch import Batch, Features
from streamfit.core.model import Model
from streamfit.data.auxiliary import TEXT_KEY
from streamfit.data.batcher import Batcher
from streamfit.data.recordio_writer import encode_label_records
from streamfit.data.source import PipeSource, SourceOptions
from streamfit.errors import DataError, StreamfitError
from streamfit.serving.errors import (
    NotAcceptable,
    PayloadTooLarge,
    RequestError,
    UnsupportedMediaType,
)
from streamfit.training.inference import model_source, write_records

__all__ = [
    "ANSWER_TYPES",
    "BODY_NAME",
    "REQUEST_TYPES",
    "SERIES_ANSWER_TYPES",
    "Body",
    "Rows",
    "body_errors",
    "decode_rows",
    "encode_answer",
    "join_bodies",
    "json_instances",
    "negotiate",
    "read_body",
    "request_format",
]

log = logging.getLogger(__name__)

#: The request content types read, and the reader's format for each.
REQUEST_TYPES = {
    "text/csv": "csv",
    "application/json": "json",
    "application/jsonlines": "jsonl",
    "application/x-recordio-protobuf": "recordio",
}
#: The answer types, in order of preference when ``Accept`` allows several equally.
ANSWER_TYPES = (
    "application/json",
    "application/jsonlines",
    "text/csv",
    # What the SageMaker SDK's predictors of the built-ins ask for (RecordDeserializer).
    "application/x-recordio-protobuf",
)
#: A forecaster's answers (quantiles by name) have no RecordIO form.
SERIES_ANSWER_TYPES = ANSWER_TYPES[:3]
#: How error messages name the body.
BODY_NAME = "request body"


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def request_format(content_type: str | None) -> str:
    """The format of a body sent as ``content_type``.

    >>> request_format("text/csv; charset=utf-8"), request_format("application/JSON")
    ('csv', 'json')
    """
    known = ", ".join(REQUEST_TYPES)
    if not content_type:
        raise UnsupportedMediaType(f"a Content-Type header is required: one of {known}")
    fmt = REQUEST_TYPES.get(_media_type(content_type))
    if fmt is None:
        raise UnsupportedMediaType(f"content type {content_type!r} is not read (read: {known})")
    return fmt


def negotiate(accept: str | None, answers: Sequence[str] = ANSWER_TYPES) -> str:
    """The type among ``answers`` that ``accept`` prefers, by its q-values; the first when it
    allows anything.

    >>> negotiate(None), negotiate("text/csv"), negotiate("text/*;q=0.5, application/jsonlines")
    ('application/json', 'text/csv', 'application/jsonlines')
    """
    if not accept or not accept.strip():
        return answers[0]
    best: tuple[float, int, str] | None = None
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        for rank, answer in enumerate(answers):
            kind = answer.split("/")[0]
            if media in (answer, "*/*", f"{kind}/*"):
                choice = (-q, rank, answer)
                best = choice if best is None or choice < best else best
    if best is None:
        raise NotAcceptable(
            f"no answer type fits Accept {accept!r} (answers: {', '.join(answers)})"
        )
    return best[2]


def encode_answer(records: Sequence[dict[str, Any]], answer_type: str) -> bytes:
    """``records`` as ``answer_type``.

    >>> encode_answer([{"score": 0.5, "predicted_label": 1}], "text/csv")
    b'score,predicted_label\\r\\n0.5,1\\r\\n'
    >>> encode_answer([{"score": 0.5}], "application/json")
    b'{"predictions": [{"score": 0.5}]}'
    """
    if answer_type == "application/json":
        return json.dumps({"predictions": list(records)}).encode()
    if answer_type == "application/x-recordio-protobuf":
        return encode_label_records(records)
    out = io.BytesIO()
    write_records(records, out, "csv" if answer_type == "text/csv" else "jsonl")
    return out.getvalue()


@dataclass(frozen=True)
class Rows:
    """A request's rows: the features and how many rows they hold."""

    features: Features
    n_rows: int


@dataclass(frozen=True)
class Body:
    """A request body in a format the readers take: ``csv``, ``jsonl`` or ``recordio``.
    ``from_json``: JSON Lines made of an ``application/json`` body's instances."""

    fmt: str
    data: bytes
    from_json: bool = False

    @functools.cached_property
    def lines(self) -> int | None:
        """Its rows, if each non-blank line is one (CSV, JSON Lines); None for RecordIO."""
        if self.fmt == "recordio":
            return None
        return sum(1 for line in self.data.split(b"\n") if line.strip())


def read_body(data: bytes, content_type: str | None) -> Body:
    """``data`` sent as ``content_type``, in the readers' terms; a JSON body is parsed here
    (refused when it is no JSON), its rows later.

    >>> read_body(b'{"instances": [[1, 2], [3, 4]]}', "application/json").lines
    2
    """
    fmt = request_format(content_type)
    body = Body("jsonl", _instances_as_lines(data), True) if fmt == "json" else Body(fmt, data)
    _ = body.lines  # counted now: the server calls this off its event loop for large bodies
    return body


def join_bodies(bodies: Sequence[Body]) -> Body:
    """One body of the rows of ``bodies`` (CSV or JSON Lines, one format), in order.

    >>> join_bodies([Body("csv", b"1,2"), Body("csv", b"3,4\\n")]).data
    b'1,2\\n3,4\\n'
    """
    parts = [b.data if b.data.endswith(b"\n") else b.data + b"\n" for b in bodies]
    return Body(bodies[0].fmt, b"".join(parts))


def decode_rows(model: Model, body: Body, max_rows: int) -> Rows:
    """The rows of ``body`` as ``model`` reads them, checked as ``predict`` checks them; a
    bad row is a :class:`DataError` naming it (for JSON, by its place in ``instances``)."""
    with body_errors(body):
        return _decode(model, body, max_rows)


@contextlib.contextmanager
def body_errors(body: Body) -> Iterator[None]:
    """Errors of reading ``body`` as the requester knows it: a JSON body's bad row by its
    instance, and anything the readers raise that is not streamfit's as a bad request."""
    try:
        yield
    except DataError as exc:
        if body.from_json and exc.row is not None:
            raise DataError(
                exc.message, source=BODY_NAME, row=exc.row, field=exc.field, row_label="instance"
            ) from exc
        raise
    except StreamfitError:
        raise
    except Exception as exc:
        # The body is all a parse reads: whatever it raises, the body caused it. Logged, as
        # the readers should have named the row themselves.
        log.warning("a request body the readers did not expect", exc_info=True)
        raise RequestError(f"{BODY_NAME}: could not be read ({type(exc).__name__}: {exc})") from exc


def _decode(model: Model, body: Body, max_rows: int) -> Rows:
    if body.fmt == "csv" and len(body.data) <= _FAST_CSV_BYTES and _plain_numbers(model):
        fast = _fast_csv(body.data, model.meta["n_features"], max_rows)
        if fast is not None:
            return fast
    stream = PipeSource(BODY_NAME, io.BytesIO(body.data), SourceOptions())
    source = model_source(model, stream, body.fmt, labelled=False, on_bad_rows="error")
    batches: list[Batch] = []
    # One batch more than the limit allows is enough to know the body is over it.
    for batch in Batcher(source, max_rows, n_features=model.meta.get("n_features")).inline():
        if batches:
            raise PayloadTooLarge(f"{BODY_NAME}: more than {max_rows:,} rows")
        batches.append(batch)
    if not batches or batches[0].n_rows == 0:
        raise RequestError(f"{BODY_NAME}: no rows to predict")
    return Rows(batches[0].features, batches[0].n_rows)


#: Bodies up to this size are first tried by :func:`_fast_csv`; larger ones gain nothing from
#: it against pyarrow's reader, whose cost per body (about 1 ms, threads included) it avoids.
_FAST_CSV_BYTES = 256 << 10
#: A CSV line of plain decimal numbers. Anything else (blank fields, quotes, "nan", "1_0",
#: spaces) goes to the library's reader, which accepts it or names the bad row and field.
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBERS_LINE = re.compile(rb"[-+.0-9eE]+(?:,[-+.0-9eE]+)*\r?")


def _plain_numbers(model: Model) -> bool:
    """Whether ``model`` reads CSV as plain rows of its width: no names, hashing, text or
    series, where the reader does nothing but parse numbers."""
    meta = model.meta
    return (
        isinstance(meta.get("n_features"), int)
        and meta.get("input_schema") is None
        and not meta.get("hash_features")
        and meta.get(TEXT_KEY) is None
        and model.input_series() is None
    )


def _fast_csv(data: bytes, width: int, max_rows: int) -> Rows | None:
    """The rows of a CSV body of plain numbers, ``width`` to a line, parsed without building a
    reader; None for any other body (the reader then reads it, and refuses it if it must).

    >>> _fast_csv(b"1,2.5\\n\\n-3,4e1\\n", 2, 10).features
    tensor([[ 1.0000,  2.5000],
            [-3.0000, 40.0000]])
    >>> _fast_csv(b"1,x\\n", 2, 10) is None, _fast_csv(b"1,2,3\\n", 2, 10) is None
    (True, True)
    """
    lines = [line for line in data.split(b"\n") if line.strip()]
    if not lines or len(lines) > max_rows:
        return None
    commas = width - 1
    if not all(_NUMBERS_LINE.fullmatch(line) and line.count(b",") == commas for line in lines):
        return None
    try:
        # float() per field rather than numpy's string casts: an order of magnitude quicker
        # for the few hundred fields of a small body.
        values = [float(v) for line in lines for v in line.split(b",")]
    except ValueError:  # "1.2.3", "e": the reader names the field
        return None
    wide = np.array(values)
    if not np.all(np.abs(wide) <= _FLOAT32_MAX):  # inf, or past float32: the reader says so
        return None
    x = wide.astype(np.float32).reshape(len(lines), width)
    return Rows(torch.from_numpy(x), len(lines))


def _instances_as_lines(body: bytes) -> bytes:
    """A JSON body as JSON Lines, one instance a line: ``{"instances": [...]}``, a list of
    instances, or one instance. An instance is ``{"features": [...]}`` (or sparse
    ``{"indices", "values"}``), a plain list of numbers, or SageMaker's verbose
    ``{"data": {"features": {"values": [...]}}}`` (with ``keys`` when sparse).

    >>> _instances_as_lines(b'{"instances": [[1, 2], {"data": {"features": {"values": [3, 4]}}}]}')
    b'{"features": [1, 2]}\\n{"features": [3, 4]}\\n'
    """
    instances, _ = json_instances(body)
    return b"".join(json.dumps(_instance(item)).encode() + b"\n" for item in instances)


def json_instances(body: bytes) -> tuple[list[Any], Any]:
    """The instances of a JSON body (``{"instances": [...]}``, a list, or one instance) and
    its ``configuration`` (a forecaster's; None when absent)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deep
        raise RequestError(f"{BODY_NAME}: not valid JSON ({exc})") from None
    configuration = None
    if isinstance(doc, dict) and "instances" in doc:
        configuration = doc.get("configuration")
        doc = doc["instances"]
        if not isinstance(doc, list):
            raise RequestError(f"{BODY_NAME}: 'instances' must be a list")
    return (doc if isinstance(doc, list) else [doc]), configuration


def _instance(item: Any) -> Any:
    if isinstance(item, list):
        return {"features": item}
    if isinstance(item, dict) and isinstance(item.get("data"), dict):
        features = item["data"].get("features")
        if isinstance(features, dict) and "values" in features:
            if "keys" in features:
                return {"indices": features["keys"], "values": features["values"]}
            return {"features": features["values"]}
    return item  # anything else is the reader's to accept or name as a bad row
