"""Prometheus metrics of the model server: requests, their latency, the batch sizes and the
swaps of followed models' versions.

Each app keeps its own registry, so two apps in one process (tests, or a server beside a
library user's own metrics) never count into each other; several worker processes
(``--workers``) count into one folder instead, read together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["MULTIPROCESS_VARIABLE", "UNKNOWN_MODEL", "ServingMetrics"]

#: Where worker processes keep their counts, read together by ``GET /metrics``; it must be
#: set before prometheus_client is imported (the workers inherit it).
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

#: The model label of requests to no served model: a label per name sent would let clients
#: grow the metrics without bound.
UNKNOWN_MODEL = "-"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


@dataclass
class ServingMetrics:
    """The counters of one app, in their own registry.

    >>> m = ServingMetrics()
    >>> m.requests.labels(model="ll", status="200").inc()
    >>> b'streamfit_serving_requests_total{model="ll",status="200"} 1.0' in m.render()
    True
    """

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "streamfit_serving_requests",
            "Invocation requests answered, by model and HTTP status.",
            ["model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "streamfit_serving_request_seconds",
            "Time from a request's arrival to its answer, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "streamfit_serving_batch_rows",
            "Rows per model call (requests batched together add up), by model.",
            ["model"],
            buckets=_ROW_BUCKETS,
            registry=self.registry,
        )

        self.swaps = Counter(
            "streamfit_serving_model_swaps",
            "New versions of a followed model swapped in, by model.",
            ["model"],
            registry=self.registry,
        )
        self.swap_failures = Counter(
            "streamfit_serving_model_swap_failures",
            "New versions of a followed model that failed to load (the old one serves on).",
            ["model"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The text exposition format, for ``GET /metrics``: of every worker process when
        ``PROMETHEUS_MULTIPROC_DIR`` is set (``streamfit serve --workers``), else this one's."""
        if MULTIPROCESS_VARIABLE not in os.environ:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
