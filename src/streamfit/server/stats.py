"""The trends the server shows (``jobs stats``' figures), computed at most every ``ttl``
seconds per question and kept: over 100,000 jobs and a million events they take seconds
(SQLite), which no page should wait for. A question asked again after ``ttl`` gets the answer
kept while a thread computes the next one (stale-while-revalidate): only the first asking of a
question waits.

>>> from streamfit.jobs.spec import JobSpec
>>> store = Store("sqlite://")
>>> _ = store.submit([JobSpec(name="a", owner="ann@example.com", command=["true"])], now=0.0)
>>> cache = StatsCache(store, ttl=30.0)
>>> [row["jobs"] for row in cache.get("owner")]
[1]
>>> _ = store.submit([JobSpec(name="b", owner="ann@example.com", command=["true"])], now=1.0)
>>> [row["jobs"] for row in cache.get("owner")]  # within ttl: the answer kept
[1]
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import HTTPConnection

from streamfit.jobs.stats import GroupStats, job_stats
from streamfit.jobs.store import Store

__all__ = ["DEFAULT_TTL", "StatsCache", "stats_as_of", "stats_of"]

log = logging.getLogger(__name__)

#: How old an answer may be before it is computed again.
DEFAULT_TTL = 30.0
#: Questions kept (by, since): the least recently asked go first.
_KEPT = 64

Key = tuple[str, float | None]


class StatsCache:
    """``job_stats`` answers of one store, kept per (``by``, ``since``)."""

    def __init__(
        self, store: Store, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        # (clock when asked, epoch seconds when asked, the answer)
        self._answers: OrderedDict[Key, tuple[float, float, list[GroupStats]]] = OrderedDict()
        self._refreshing: set[Key] = set()
        self._lock = threading.Lock()

    def get(self, by: str = "day", since: float | None = None) -> list[GroupStats]:
        """The figures (``ConfigError`` for a ``by`` that cannot be used, as ``job_stats``)."""
        return self.as_of(by, since)[0]

    def as_of(self, by: str = "day", since: float | None = None) -> tuple[list[GroupStats], float]:
        """The figures and when they were computed (epoch seconds)."""
        key = (by, since)
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None:
                self._answers.move_to_end(key)
                stale = self.clock() - kept[0] >= self.ttl
                if stale and key not in self._refreshing:
                    self._refreshing.add(key)
                    threading.Thread(target=self._refresh, args=(key,), daemon=True).start()
                return kept[2], kept[1]
        return self._compute(key)

    def _compute(self, key: Key) -> tuple[list[GroupStats], float]:
        asked, asked_at = self.clock(), time.time()
        answer = job_stats(self.store, by=key[0], since=key[1])
        with self._lock:
            self._answers[key] = (asked, asked_at, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > _KEPT:
                self._answers.popitem(last=False)
        return answer, asked_at

    def _refresh(self, key: Key) -> None:
        try:
            self._compute(key)
        except Exception:  # the kept answer stays; the next asking tries again
            log.warning("stats %s: could not be computed again", key, exc_info=True)
        finally:
            with self._lock:
                self._refreshing.discard(key)


def stats_of(
    request: HTTPConnection, by: str = "day", since: float | None = None
) -> list[GroupStats]:
    """The application's kept figures (what ``GET /api/stats`` and the trend charts show)."""
    return stats_as_of(request, by, since)[0]


def stats_as_of(
    request: HTTPConnection, by: str = "day", since: float | None = None
) -> tuple[list[GroupStats], float]:
    """:func:`stats_of`, and when the figures were computed (epoch seconds)."""
    cache: StatsCache = request.app.state.stats
    return cache.as_of(by, since)
