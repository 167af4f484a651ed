"""Named feature columns: what a source calls its features, and matching files to it by name.

Sources whose columns have names (Parquet's plain columns, CSV with a header, SQL results)
take the feature columns of their first file, or first read, as the channel's :class:`Schema`,
unless one is expected (``SourceOptions.columns``: a model's or a state's). Every other file and
every later read is matched to it by name and put in its order, so that a file whose columns
come in another order feeds the same feature to the same weight; a column missing, extra or of
another kind is an error naming the file and the columns. Data without names (feature lists,
libsvm, RecordIO, CSV without a header) is positional, as before.

>>> train = Schema.of([("age", pa.int64()), ("income", pa.float64())], label="y")
>>> train.order(Schema.of([("income", pa.float64()), ("age", pa.int32())]), "b.parquet")
['age', 'income']
>>> train.order(Schema.of([("age", pa.int64())]), "c.parquet")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
streamfit.errors.DataError: c.parquet: missing column 'income' (expected 'age', 'income' ...)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from streamfit.errors import DataError, StateError

__all__ = ["NUMBER", "STRING", "Column", "Schema", "kind_of"]

NUMBER, STRING, OTHER = "number", "string", "other"
_SHOWN = 10  # columns named in a message, at most


def kind_of(kind: pa.DataType) -> str:
    """``number`` (read as float32), ``string`` (a feature only when hashed) or ``other``."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_null(kind)
    ):
        return NUMBER
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return STRING
    return OTHER


@dataclass(frozen=True)
class Column:
    """A feature column: its name, its Arrow type as written, and the kind that matters."""

    name: str
    type: str
    kind: str


@dataclass(frozen=True)
class Schema:
    """The feature columns of a channel, in their order, and its label column (if any)."""

    columns: tuple[Column, ...]
    label: str | None = None

    @classmethod
    def of(cls, fields: Iterable[tuple[str, pa.DataType]], label: str | None = None) -> Schema:
        return cls(tuple(Column(n, str(t), kind_of(t)) for n, t in fields), label)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": [{"name": c.name, "type": c.type, "kind": c.kind} for c in self.columns],
            "label": self.label,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Schema:
        """The schema ``to_json`` wrote (a state's or a model's); anything else is a
        :class:`StateError`."""
        try:
            columns = tuple(
                Column(str(c["name"]), str(c["type"]), str(c["kind"])) for c in doc["columns"]
            )
            label = doc.get("label")
        except (KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"unreadable input schema ({exc!r})") from exc
        return cls(columns, None if label is None else str(label))

    def order(self, found: Schema, file: str) -> list[str]:
        """The names of ``found`` to read, in this schema's order; a file with a column
        missing, extra or of another kind is a :class:`DataError` naming it."""
        duplicated(found.names, file)
        have = {c.name: c for c in found.columns}
        want = {c.name: c for c in self.columns}
        expected = f"(expected {_names(self.names)} in any order)"
        missing = [n for n in self.names if n not in have]
        if missing:
            raise DataError(f"missing {_columns(missing)} {expected}", source=file)
        extra = [n for n in found.names if n not in want]
        if extra:
            raise DataError(f"extra {_columns(extra)} {expected}", source=file)
        for name in self.names:
            if have[name].kind != want[name].kind:
                raise DataError(
                    f"column {name!r} is {have[name].type} where the data before had "
                    f"{want[name].type} ({want[name].kind})",
                    source=file,
                )
        return self.names


def duplicated(names: list[str], file: str) -> None:
    """A name given to two columns is an error: neither could be told from the other."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"two columns are named {name!r}", source=file)
        seen.add(name)


def _columns(names: list[str]) -> str:
    return f"column {names[0]!r}" if len(names) == 1 else f"columns {_names(names)}"


def _names(names: list[str]) -> str:
    shown = ", ".join(map(repr, names[:_SHOWN]))
    return shown if len(names) <= _SHOWN else f"{shown} and {len(names) - _SHOWN} more"
