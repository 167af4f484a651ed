"""JSON Lines: one object a line, ``{"label": 1, "features": [...]}`` for dense rows,
``{"label": 1, "indices": [...], "values": [...]}`` for sparse ones, or ``{"text": "..."}`` for
raw text documents (counted into sparse rows by :mod:`streamfit.data.documents`); ``label`` is
absent in unlabelled data. The first object sets the layout of the file. Blocks are parsed by
pyarrow; a rejected block is re-read line by line to name the bad line and field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Generator
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from streamfit.data.chunk import FEATURES, INDICES, LABEL, VALUES, Chunk, float_values, list_values
from streamfit.data.documents import Bagger, text_chunk
from streamfit.data.native import arrow_bytes
from streamfit.data.plaintext import bagger_for
from streamfit.data.text import ReadContext, parse_blocks, record_lines

__all__ = ["read_jsonl"]

_NOT_AN_OBJECT = re.compile(rb"(?m)^[ \t\r]*[^{ \t\r\n]")
_BRACE, _NEWLINE = ord("{"), ord("\n")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
TEXT = "text"
Layout = Literal["dense", "sparse", "text"]


def read_jsonl(stream: BinaryIO, ctx: ReadContext) -> Generator[Chunk, None, int]:
    """Yield chunks of a JSON Lines stream; returns the number of lines read."""
    checker = ctx.checker
    checker.enter(checker.file, ctx.offset, "line")
    label = ctx.label_column or LABEL
    layout: Layout | None = None
    bagger: Bagger | None = None

    def parse(block: bytes, start: int, end: int) -> Chunk | None:
        nonlocal layout, bagger
        if layout is None:
            layout = _first_layout(block)
            if layout is None:
                return None  # blank lines only: no record to tell the layout yet
            if layout == TEXT:
                bagger = bagger_for(ctx)
        return _parse_block(block, start, end, layout, label, ctx, bagger)

    return (yield from parse_blocks(stream, ctx, parse, ctx.skip))


def _first_layout(block: bytes) -> Layout | None:
    """The layout of the first record: sparse (``indices`` and no ``features``), text
    (``text`` and neither), else dense; None if the block has no record."""
    at = 0
    while at < len(block):  # line by line, not a split of the whole block for its first line
        cut = block.find(b"\n", at)
        cut = len(block) if cut < 0 else cut
        raw, at = block[at:cut], cut + 1
        if raw.strip():
            try:
                obj = json.loads(raw)
            except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
                return "dense"  # the parse reports the line
            if not isinstance(obj, dict) or FEATURES in obj:
                return "dense"
            if INDICES in obj:
                return "sparse"
            return "text" if TEXT in obj else "dense"
    return None


def _braces_only(block: bytes) -> bool:
    """Whether every line of ``block`` begins with ``{``: then no line is blank and none is
    other than an object's start, as :func:`record_lines` and ``_NOT_AN_OBJECT`` would find,
    in one vectorised pass (the regex took as long as pyarrow's parse of the block).

    >>> _braces_only(b'{"a": 1}\\n{"a": 2}\\n'), _braces_only(b'{"a": 1}\\n\\n{"a": 2}\\n')
    (True, False)
    >>> _braces_only(b'{"a": 1}\\n null\\n'), _braces_only(b' {"a": 1}\\n'), _braces_only(b"")
    (False, False, False)
    """
    data = np.frombuffer(block, dtype=np.uint8)
    if not data.size or data[0] != _BRACE:
        return False
    starts = np.flatnonzero(data[:-1] == _NEWLINE) + 1
    return bool((data[starts] == _BRACE).all())


def _schema(layout: Layout, label: str, labelled: bool) -> pa.Schema:
    fields = [pa.field(label, pa.float32())] if labelled else []
    if layout == TEXT:
        fields.append(pa.field(TEXT, pa.string()))
    elif layout == "sparse":
        fields += [
            pa.field(INDICES, pa.list_(pa.int64())),
            pa.field(VALUES, pa.list_(pa.float32())),
        ]
    else:
        fields.append(pa.field(FEATURES, pa.list_(pa.float32())))
    return pa.schema(fields)


def _parse_block(
    block: bytes,
    start: int,
    end: int,
    layout: Layout,
    label: str,
    ctx: ReadContext,
    bagger: Bagger | None = None,
) -> Chunk:
    checker = ctx.checker
    objects = _braces_only(block)
    records = None if objects else record_lines(block)
    data = block if records is None else b"\n".join(records[0]) + b"\n"
    sparse = layout == "sparse"
    if not objects and _NOT_AN_OBJECT.search(data):
        # A line that is no object is a bad row; and pyarrow's reader crashes (SIGSEGV)
        # when the first line is a bare ``null``.
        return _parse_slow(block, start, end, layout, label, ctx, bagger)
    schema = _schema(layout, label, checker.labelled)
    try:
        table = pajson.read_json(
            arrow_bytes(data),
            parse_options=pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return _parse_slow(block, start, end, layout, label, ctx, bagger)
    positions = start + (np.arange(table.num_rows) if records is None else records[1])
    positions = positions.astype(np.int64)
    labels = float_values(table.column(label)) if checker.labelled else None
    if layout == TEXT:
        assert bagger is not None
        try:
            texts = table.column(TEXT).to_pylist()
        except UnicodeDecodeError:  # pyarrow's parser lets invalid UTF-8 through
            texts = [None]
        if None in texts:  # missing or not UTF-8: the slow path names its line
            return _parse_slow(block, start, end, layout, label, ctx, bagger)
        return text_chunk(checker, bagger, texts, positions, end, labels, label_name=label)
    if sparse:
        if table.column(INDICES).null_count or table.column(VALUES).null_count:
            return _parse_slow(block, start, end, layout, label, ctx)
        idx = table.column(INDICES).combine_chunks()  # int64: indices beyond float32's 2**24
        if idx.flatten().null_count:  # a null index: the slow path names its line
            return _parse_slow(block, start, end, layout, label, ctx)
        offsets = np.asarray(idx.offsets.to_numpy(), dtype=np.int64)
        indices = np.asarray(idx.flatten().to_numpy(zero_copy_only=False), dtype=np.int64)
        offsets = offsets - offsets[0]
        voffsets, values, _ = list_values(table.column(VALUES))
        if not np.array_equal(offsets, voffsets):
            return _parse_slow(block, start, end, layout, label, ctx)
        return checker.sparse(offsets, indices, values, labels, positions, end, label_name=label)
    offsets, flat, nulls = list_values(table.column(FEATURES))
    lengths = np.diff(offsets)
    if checker.n_features is None and not nulls.all():  # else a wrong width is a bad row
        checker.fix_width(int(lengths[~nulls][0]), int(positions[~nulls][0]))
    if nulls.any() or (lengths != checker.n_features).any():
        return _parse_slow(block, start, end, layout, label, ctx)
    x = flat.reshape(len(lengths), int(checker.n_features or 0))
    return checker.dense(
        x, labels, positions, end, field_name=lambda j: f"{FEATURES}[{j}]", label_name=label
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{_short(value)} is not a number")
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits
        return math.inf  # reported by the checker as a non-finite value


def _index(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number: float | int = value
    else:
        number = _number(value)
        if not number.is_integer():
            raise ValueError(f"{_short(value)} is not an index")
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError(f"index {_short(value)} is beyond 64 bits")
    return int(number)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"not a list but {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), "a number")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _parse_slow(
    block: bytes,
    start: int,
    end: int,
    layout: Layout,
    label: str,
    ctx: ReadContext,
    bagger: Bagger | None = None,
) -> Chunk:
    checker = ctx.checker
    sparse = layout == "sparse"
    texts: list[str] = []
    labels: list[float] = []
    positions: list[int] = []
    bad: list[int] = []
    rows: list[list[float]] = []
    indptr, indices, values = [0], [], []
    for i, raw in enumerate(block.split(b"\n")):
        if not raw.strip():
            continue
        pos = start + i
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            checker.bad(pos, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
            bad.append(pos)
            continue
        except UnicodeDecodeError as exc:
            checker.bad(pos, None, f"not UTF-8 (byte {exc.start + 1})")
            bad.append(pos)
            continue
        except RecursionError:
            checker.bad(pos, None, "nested too deep to be a row")
            bad.append(pos)
            continue
        field: str | None = None
        try:
            if not isinstance(obj, dict):
                raise ValueError(f"not a JSON object but {_kind(obj)}")
            if checker.labelled:
                field = label
                if obj.get(label) is None:
                    raise ValueError("missing label")
                y = _number(obj[label])
            if layout == TEXT:
                field = TEXT
                text = obj[TEXT]
                if not isinstance(text, str):
                    raise ValueError(f"not a string but {_kind(text)}")
            elif sparse:
                field = INDICES
                idx = [_index(v) for v in _list(obj[INDICES])]
                field = VALUES
                val = [_number(v) for v in _list(obj.get(VALUES, [1.0] * len(idx)))]
                if len(val) != len(idx):
                    raise ValueError(f"{len(idx)} indices but {len(val)} values")
            else:
                field = FEATURES
                row = [_number(v) for v in _list(obj[FEATURES])]
                if checker.n_features is None:
                    checker.n_features = len(row)
                if len(row) != checker.n_features:
                    raise ValueError(f"{len(row)} features where the data has {checker.n_features}")
        except KeyError as exc:
            checker.bad(pos, str(exc.args[0]), "missing field")
            bad.append(pos)
            continue
        except (ValueError, TypeError) as exc:
            checker.bad(pos, field, str(exc))
            bad.append(pos)
            continue
        if checker.labelled:
            labels.append(y)
        positions.append(pos)
        if layout == TEXT:
            texts.append(text)
        elif sparse:
            indices.extend(idx)
            values.extend(val)
            indptr.append(len(indices))
        else:
            rows.append(row)
    y_arr = np.asarray(labels, dtype=np.float32) if checker.labelled else None
    pos_arr = np.asarray(positions, dtype=np.int64)
    if layout == TEXT:
        assert bagger is not None
        return text_chunk(checker, bagger, texts, pos_arr, end, y_arr, bad, label)
    if sparse:
        return checker.sparse(
            np.asarray(indptr, dtype=np.int64),
            np.asarray(indices, dtype=np.int64),
            np.asarray(values, dtype=np.float32),
            y_arr,
            pos_arr,
            end,
            bad,
            label_name=label,
        )
    x = np.asarray(rows, dtype=np.float32).reshape(len(rows), int(checker.n_features or 0))
    return checker.dense(
        x, y_arr, pos_arr, end, bad, field_name=lambda j: f"{FEATURES}[{j}]", label_name=label
    )
