"""Promotion-type Hyperband (asynchronous successive halving), as Syne Tune's
``PromotionRungSystem`` does it: a trial trains to a rung's budget and pauses; when a slot is
free, the best paused trial that is among the top 1 in ``reduction_factor`` of those recorded
at its rung is resumed to the next rung, looking at the highest rungs first; with none to
promote, a new trial starts at the lowest rung.

``results[trial][rung]`` is a trial's objective at a rung (None: it ended there without one);
``started`` holds each (trial, rung) already given a job.

>>> results = {0: {0: 0.7}, 1: {0: 0.9}, 2: {0: 0.8}}
>>> promotion(results, started={(0, 0), (1, 0), (2, 0)}, rungs=3, factor=3, maximize=True)
(1, 1)
>>> promotion(results, started={(0, 0), (1, 0), (2, 0), (1, 1)}, rungs=3, factor=3,
...           maximize=True) is None
True
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

__all__ = ["promotion"]


def promotion(
    results: Mapping[int, Mapping[int, float | None]],
    started: Collection[tuple[int, int]],
    rungs: int,
    factor: int,
    maximize: bool,
) -> tuple[int, int] | None:
    """The (trial, rung) to resume next (into ``rung``), or None."""
    for rung in range(rungs - 2, -1, -1):
        recorded = [
            (value, trial)
            for trial, values in results.items()
            if (value := values.get(rung)) is not None
        ]
        top = len(recorded) // factor
        if top == 0:
            continue
        # best first; ties to the earlier trial, as the order they were recorded in would
        recorded.sort(key=lambda vt: ((-vt[0] if maximize else vt[0]), vt[1]))
        for _, trial in recorded[:top]:
            if (trial, rung + 1) not in started:
                return trial, rung + 1
    return None
