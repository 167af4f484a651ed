"""What every source is: the :class:`Source` base class and the :class:`SourceOptions` a
channel is read with. The kinds of source (files and pipes in :mod:`streamfit.data.source`,
SQL queries in :mod:`streamfit.data.sql`) build on it, and ``open_source`` picks among them.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamfit.data.checks import OnBadRows, RowChecker
from streamfit.data.chunk import Chunk
from streamfit.data.schema import Schema
from streamfit.data.series_long import SeriesTable
from streamfit.data.text import BLOCK_BYTES, ReadContext
from streamfit.data.vocabulary import Vocabulary
from streamfit.errors import ConfigError

if TYPE_CHECKING:
    from streamfit.core.state import State
    from streamfit.core.windows import SeriesReading

__all__ = ["CONTENT_TYPES", "FORMATS", "Source", "SourceOptions"]

#: The formats streamfit reads (each has a reader in :mod:`streamfit.data.source`).
FORMATS = ("csv", "parquet", "jsonl", "libsvm", "recordio", "text")

#: SageMaker's content types (and short names) to formats.
CONTENT_TYPES: dict[str, str] = {
    "text/csv": "csv",
    "application/x-parquet": "parquet",
    "application/jsonlines": "jsonl",
    "application/json": "jsonl",
    "text/libsvm": "libsvm",
    "text/x-libsvm": "libsvm",
    "application/x-recordio-protobuf": "recordio",
    "text/plain": "text",
    **{name: name for name in FORMATS},
}


@dataclass(frozen=True)
class SourceOptions:
    """How to read a channel."""

    content_type: str | None = None
    label_column: str | None = None
    labelled: bool = True
    on_bad_rows: OnBadRows = "error"
    #: Sparse indices must be below this (the algorithm's ``feature_dim``).
    max_index: int | None = None
    #: The hashing trick: sparse ids, and string columns of tabular files, folded into
    #: ``[0, hash_features)`` (see :mod:`streamfit.data.hashing`).
    hash_features: int | None = None
    block_bytes: int = BLOCK_BYTES
    #: The named feature columns to expect (see :mod:`streamfit.data.schema`): files and
    #: reads whose columns have names are matched to them by name. None: the first file's.
    columns: Schema | None = None
    #: The ids of words (SageMaker's auxiliary channel): raw text is counted by it, else
    #: hashed into ``hash_features``, else ``max_index`` columns (:mod:`.documents`).
    vocabulary: Vocabulary | None = None
    #: Drop English stop words from raw text (those the vocabulary does not list).
    stop_words: bool = True
    #: Rows are bags of words: a negative count or an empty document is a bad row.
    bag_of_words: bool = False
    #: Read series records into windows (a forecaster's), not rows: a position is a window.
    series: SeriesReading | None = None
    #: ``(k, n)``: of long-format series rows, only the items of worker ``k`` of ``n``
    #: (:class:`streamfit.data.series_long.SeriesTable`).
    series_shard: tuple[int, int] | None = None

    def format(self) -> str | None:
        if self.content_type is None:
            return None
        key = self.content_type.split(";")[0].strip().lower()
        if key not in CONTENT_TYPES:
            known = ", ".join(sorted(CONTENT_TYPES))
            raise ConfigError(f"unknown content type {self.content_type!r} (known: {known})")
        return CONTENT_TYPES[key]


class Source(ABC):
    """A channel's data. ``read`` may be called once per epoch (``rereadable``) or once."""

    name: str
    rereadable: bool = True
    #: A message stream: every run reads on from where its state stands, even a state whose
    #: epochs are done, since the stream has new messages by then.
    endless: bool = False
    #: Set when training is asked to stop (SIGTERM): an endless read ends.
    interrupt: threading.Event | None = None
    #: Whether ``options.series`` can be honoured (files and pipes of series records).
    reads_series: bool = False
    _stop: threading.Event | None = None
    _checker: RowChecker | None = None
    _series_table: SeriesTable | None = None

    def __init__(self, name: str, options: SourceOptions) -> None:
        self.name = name
        self.options = options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def with_options(self, options: SourceOptions) -> Source:
        """The same data, read with other options (the trainer sets labels and bad rows)."""
        other = copy.copy(self)
        other.options = options
        other._checker = None
        return other

    def read(
        self,
        skip: int = 0,
        n_features: int | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        """Chunks from position ``skip`` on; ``n_features`` fixes the width (else row one).

        ``stop``, once set, ends a wait for data that could last (a pipe's): the read then
        raises :class:`ReadStopped`. Reads of files end by themselves, a chunk at a time.
        """
        self._stop = stop
        if self.options.series is not None and not self.reads_series:
            raise ConfigError(
                f"{self.name}: series are read from whole files, a pipe or a SQL query, not "
                "a shard of a file"
            )
        checker = RowChecker(
            labelled=self.options.labelled,
            on_bad_rows=self.options.on_bad_rows,
            n_features=n_features,
            max_index=self.options.max_index,
            hash_space=self.options.hash_features,
            file=self.name,
            columns=self.schema,  # a later read matches the first one's columns by name
            bag_of_words=self.options.bag_of_words,
        )
        self._checker = checker
        self._series_table = None
        series = self.options.series
        if series is not None and series.mode != "forecast":
            self._series_table = SeriesTable(
                series, self.options.series_shard, self.options.block_bytes
            )
        return self._read(skip, checker)

    @property
    def schema(self) -> Schema | None:
        """The named feature columns: expected (``options.columns``), else those the first
        read found (known once it has begun); None for data without names."""
        if self.options.columns is not None or self._checker is None:
            return self.options.columns
        return self._checker.columns

    def expecting(self, schema: Schema | Mapping[str, Any] | None) -> Source:
        """This source, its named columns matched to ``schema`` (a state's or a model's, as
        ``Schema.to_json`` wrote it); itself when ``schema`` is None."""
        if schema is None:
            return self
        if not isinstance(schema, Schema):
            schema = Schema.from_json(schema)
        return self.with_options(dataclasses.replace(self.options, columns=schema))

    # A message stream's position is also where it stands in the stream, and what it has
    # delivered is acknowledged once durable; files and queries need none of the three.
    def restored(self, state: State | None) -> Source:
        """This source, continuing after what ``state`` holds (a stream's stamp)."""
        return self

    def stamp(self, state: State) -> None:  # noqa: B027 (files and queries: nothing to do)
        """Record in ``state`` where this source stands at ``state.position`` (after a fold)."""

    def commit(self, state: State) -> None:  # noqa: B027 (nothing to acknowledge)
        """``state`` (stamped) is durable now: a checkpoint or the output holds it."""

    @abstractmethod
    def _read(self, skip: int, checker: RowChecker) -> Iterator[Chunk]:
        """Chunks from position ``skip`` on, validated by ``checker``."""

    def _context(self, checker: RowChecker, offset: int, skip: int) -> ReadContext:
        return ReadContext(
            checker=checker,
            offset=offset,
            skip=skip,
            label_column=self.options.label_column,
            block_bytes=self.options.block_bytes,
            vocabulary=self.options.vocabulary,
            stop_words=self.options.stop_words,
            series=self.options.series,
            series_table=self._series_table,
        )
