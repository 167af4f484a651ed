"""streamfit's error tree. The class of an error decides what happens to it.

    StreamfitError
     ├── ConfigError               a bad hyperparameter or option: fix the configuration
     │    └── UnknownAlgorithmError
     ├── DataError                 a bad input row: names the source, the row and the field
     ├── StateError                a state or model folder that cannot be used
     │    ├── CorruptStateError    truncated, unreadable or tampered files
     │    └── IncompatibleStateError  another algorithm, a newer format, another feature width
     ├── TrainingDiverged          the loss or the state became NaN or infinite
     └── TrainingInterrupted       asked to stop (SIGTERM); a checkpoint was written first

Every error here is permanent for the input that caused it: retrying the same job with the same
input fails the same way. Transient failures (lost processes, no capacity) belong to the job
manager's own tree.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CorruptStateError",
    "DataError",
    "IncompatibleStateError",
    "StateError",
    "StreamfitError",
    "TrainingDiverged",
    "TrainingInterrupted",
    "UnknownAlgorithmError",
]


class StreamfitError(Exception):
    """The root of every error streamfit raises on purpose."""


class ConfigError(StreamfitError, ValueError):
    """A hyperparameter, option or argument that cannot be used."""


class UnknownAlgorithmError(ConfigError, KeyError):
    """No algorithm is registered under that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(StreamfitError, ValueError):
    """A row of input that cannot be used, with where it is.

    >>> str(DataError("Bad number 'x'", source="train.csv", row=17, field="column 3"))
    "train.csv, line 17, column 3: Bad number 'x'"
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        row: int | None = None,
        field: str | None = None,
        row_label: str = "line",
    ) -> None:
        self.message = message
        self.source = source
        self.row = row
        self.field = field
        self.row_label = row_label
        where = [source]
        if row is not None:
            where.append(f"{row_label} {row}")
        if field is not None:
            where.append(field)
        super().__init__(f"{', '.join(where)}: {message}")


class StateError(StreamfitError):
    """A state or model folder that cannot be used."""


class CorruptStateError(StateError):
    """A state or model file that is truncated, unreadable or does not match its checksum."""


class IncompatibleStateError(StateError):
    """A readable state that belongs to another algorithm, a newer format or other data."""


class TrainingDiverged(StreamfitError):
    """Training produced a non-finite loss or state (settings that diverge, or features too
    large to train on unscaled). The last checkpoint with finite values is kept."""

    exit_code = 5


class TrainingInterrupted(StreamfitError):
    """Training stopped on request (SIGTERM) after writing a checkpoint; resume continues it."""

    exit_code = 75  # EX_TEMPFAIL: "try again later", distinct from every failure's code
