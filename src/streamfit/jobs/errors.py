"""The job manager's error tree. The class decides what happens to the job.

JobError
 ├── SpecError              a job spec that cannot be used: names the file, job and field
 ├── NoSuchJob
 ├── TransitionError        a status change the table forbids, or lost to another writer
 │    └── StaleJob          the job changed since it was read (version mismatch)
 ├── LaunchError            raised by a backend's launch
 │    ├── CapacityError          transient: no room now; retried, uses up no attempts
 │    ├── TransientLaunchError   transient: the backend hiccupped; retried with backoff
 │    └── InvalidJobError        permanent: this job can never run here; Failed (invalid)
 ├── BackendUnavailable     a backend not reachable to poll, stop or read logs: the step
 │                          is tried again on its next pass; the job's status is kept
 ├── DeliveryError          a notification not delivered: retried with backoff
 └── StoreError             a store that cannot be used: names its file (or URL) and what to do
      ├── NoStore           nothing there yet: reading commands find no jobs, submit and the
      │                     scheduler create one
      ├── StoreMissing      the home holds a store's runs, but its store file is gone
      ├── StoreReadOnly     the store file, or its folder, cannot be written
      ├── NotAStore         not a database (corrupt), or not streamfit's
      ├── StoreUnavailable  the database cannot be opened or reached
      └── StoreReplaced     deleted, replaced or reset under a process that had it open
"""

from __future__ import annotations

from streamfit.errors import ConfigError, StreamfitError

__all__ = [
    "BackendUnavailable",
    "CapacityError",
    "DeliveryError",
    "InvalidJobError",
    "JobError",
    "LaunchError",
    "NoStore",
    "NoSuchJob",
    "NotAStore",
    "SpecError",
    "StaleJob",
    "StoreError",
    "StoreMissing",
    "StoreReadOnly",
    "StoreReplaced",
    "StoreUnavailable",
    "TransientLaunchError",
    "TransitionError",
]


class JobError(StreamfitError):
    """Root of the job manager's errors."""


class SpecError(JobError, ConfigError):
    """A job spec that cannot be used."""


class NoSuchJob(JobError, LookupError):
    """No job has that id."""


class TransitionError(JobError):
    """A status change the transition table forbids."""


class StaleJob(TransitionError):
    """The job's status or version changed since it was read: another writer got there first."""


class LaunchError(JobError):
    """A backend could not launch a run."""


class CapacityError(LaunchError):
    """No room for the job's resources right now; try again later."""


class TransientLaunchError(LaunchError):
    """The backend failed in a way that may pass; try again later."""


class InvalidJobError(LaunchError):
    """The job can never be launched by this backend (asks more than it has, bad command)."""


class BackendUnavailable(JobError):
    """A backend (a cluster's API) could not be reached; nothing is known about the run."""


class DeliveryError(JobError):
    """A notifier could not deliver a message; the text is safe to log and store."""


class StoreError(JobError):
    """A store that cannot be used; the message names it and says what to do."""


class NoStore(StoreError):
    """No store at that place yet (and nothing says there was one)."""


class StoreMissing(StoreError):
    """The home holds runs of a store whose file is gone: starting an empty store there would
    lose track of them."""


class StoreReadOnly(StoreError):
    """The store file or its folder cannot be written by this user."""


class NotAStore(StoreError):
    """A file that is not a database (corrupt or another kind), or a database that is not a
    streamfit store."""


class StoreUnavailable(StoreError):
    """The database cannot be opened or reached."""


class StoreReplaced(StoreError):
    """The store a process opened was deleted, replaced or reset under it: its work would go
    to the wrong place."""
