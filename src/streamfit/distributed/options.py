"""Settings of a distributed run (no Ray needed to build them)."""

from __future__ import annotations

from dataclasses import dataclass

from streamfit.errors import ConfigError

__all__ = ["DistributedOptions"]


@dataclass(frozen=True)
class DistributedOptions:
    """How :func:`streamfit.train` spreads a job over Ray workers.

    >>> DistributedOptions.build(4, None, False, None).exchange_every
    4
    """

    workers: int
    #: A Ray cluster (``host:port``, ``ray://...`` or ``auto``); None starts a local Ray.
    ray_address: str | None = None
    #: Parameter-server algorithms: average all workers' states every ``exchange_every``
    #: batches instead of applying each worker's delta as it arrives.
    sync: bool = False
    #: Batches a worker trains between pushes to the parameter server (or between averages).
    exchange_every: int = 4
    #: Batches a worker trains per call from the driver: how often the driver hears of
    #: progress and may checkpoint or stop.
    step_batches: int = 16
    #: Times a lost worker or server restarts the run from its latest checkpoint.
    max_restarts: int = 3
    #: Seconds to wait for the workers to start (a cluster without room for them).
    start_timeout: float = 120.0

    @classmethod
    def build(
        cls, workers: int, ray_address: str | None, sync: bool, exchange_every: int | None
    ) -> DistributedOptions:
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        every = 4 if exchange_every is None else exchange_every
        if every < 1:
            raise ConfigError(f"exchange_every must be at least 1, got {every}")
        return cls(workers, ray_address, sync, every, step_batches=max(16, every))
