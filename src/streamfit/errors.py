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

Each class has one exit status (:data:`EXIT_STATUSES`, at the end): the code ``streamfit``
exits with, how its message starts, and what the job manager makes of a built-in job that
exits so. The CLI (``streamfit.cli.options``) and the job manager (``streamfit.jobs.runs``)
both read that table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "EXIT_STATUSES",
    "ConfigError",
    "CorruptStateError",
    "DataError",
    "ExitStatus",
    "IncompatibleStateError",
    "Retry",
    "StateError",
    "StreamfitError",
    "TrainingDiverged",
    "TrainingInterrupted",
    "UnknownAlgorithmError",
    "exit_status_of_code",
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


class TrainingInterrupted(StreamfitError):
    """Training stopped on request (SIGTERM) after writing a checkpoint; resume continues it."""


# -- exit statuses ---------------------------------------------------------------------------


class Retry(StrEnum):
    """What the job manager does with a built-in job whose ``streamfit train`` exited so."""

    NEVER = "never"  # permanent: the same input fails the same way (failure kind ``invalid``)
    WITHIN_BUDGET = "within budget"  # the job's own failure: retried while retry.algorithm lasts
    FROM_CHECKPOINT = "from checkpoint"  # not the job's fault: resumed (retry.infrastructure)


@dataclass(frozen=True)
class ExitStatus:
    code: int
    #: Its key in the CLI's ``EXIT_CODES``.
    name: str
    #: How the CLI's one-line message starts.
    prefix: str
    #: What the job manager records as a failed run's reason.
    reason: str
    retry: Retry


#: Every error's exit status: the first row whose class an error is an instance of decides.
#: The codes are the README's (0 is success; an error that is not streamfit's exits 1 too).
EXIT_STATUSES: tuple[tuple[type[StreamfitError], ExitStatus], ...] = (
    (
        TrainingInterrupted,  # 75 is EX_TEMPFAIL, "try again later": no failure's code
        ExitStatus(
            75,
            "interrupted",
            "interrupted",
            "interrupted after a checkpoint",
            Retry.FROM_CHECKPOINT,
        ),
    ),
    (
        TrainingDiverged,
        ExitStatus(5, "diverged", "training diverged", "training diverged", Retry.WITHIN_BUDGET),
    ),
    (DataError, ExitStatus(3, "data", "data error", "bad input data", Retry.NEVER)),
    (StateError, ExitStatus(4, "state", "state error", "unusable state", Retry.NEVER)),
    (ConfigError, ExitStatus(2, "config", "error", "bad configuration", Retry.NEVER)),
    (StreamfitError, ExitStatus(1, "error", "error", "error", Retry.WITHIN_BUDGET)),
)


def exit_status_of_code(code: int) -> ExitStatus | None:
    """The exit status ``code`` stands for; None for a code streamfit never exits with.

    >>> exit_status_of_code(75).retry, exit_status_of_code(0)
    (<Retry.FROM_CHECKPOINT: 'from checkpoint'>, None)
    """
    return next((status for _, status in EXIT_STATUSES if status.code == code), None)
