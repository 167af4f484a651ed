"""Backoff: a pure function of the attempt, the policy and an injectable random source."""

from __future__ import annotations

import random

__all__ = ["compute_backoff"]


def compute_backoff(
    attempt: int,
    base: float,
    maximum: float,
    jitter: float = 0.5,
    rand: random.Random | None = None,
) -> float:
    """Seconds to wait before try ``attempt`` (1 = the first retry): exponential, capped, with
    up to ``jitter`` of it drawn at random so that jobs failing together do not return together.

    >>> compute_backoff(1, 30, 3600, jitter=0), compute_backoff(3, 30, 3600, jitter=0)
    (30.0, 120.0)
    >>> compute_backoff(20, 30, 3600, jitter=0)
    3600.0
    """
    delay = min(float(maximum), float(base) * 2.0 ** max(attempt - 1, 0))
    r = (rand or random).random()
    return delay * (1.0 - jitter * r)
