"""What every step works with: the store, the backend, the clock, the jobs' home folder."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from streamfit.jobs.backends.base import Backend
from streamfit.jobs.clock import Clock, SystemClock
from streamfit.jobs.settings import FairShare
from streamfit.jobs.store import Store

__all__ = ["StepContext"]


@dataclass
class StepContext:
    store: Store
    backend: Backend
    home: Path
    clock: Clock = field(default_factory=SystemClock)
    rand: random.Random = field(default_factory=random.Random)
    #: Capacity backoff: first wait and cap, in seconds (jitter is added).
    capacity_backoff: float = 2.0
    capacity_backoff_max: float = 60.0
    #: A job that has waited this long for capacity stops smaller jobs behind it from
    #: overtaking it (no starvation of large jobs).
    starvation_seconds: float = 300.0
    #: Named secrets jobs may ask for (``env_from: {KEY: "secret:NAME"}``).
    secrets: Mapping[str, SecretStr] = field(default_factory=dict)
    #: Further values masked wherever a job's output is kept (the scheduler's SMTP password).
    hidden: Sequence[SecretStr] = ()
    #: Shares' weights and caps, and the half-life of their usage.
    fair_share: FairShare = field(default_factory=FairShare)
