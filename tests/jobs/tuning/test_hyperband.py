"""Promotion-type Hyperband's choice of the trial to resume."""

from __future__ import annotations

from streamfit.jobs.tuning.hyperband import promotion


def test_promotion_looks_at_the_highest_rung_first() -> None:
    results = {t: {0: 0.5 + t / 100} for t in range(9)}
    results.update({8: {0: 0.58, 1: 0.9}, 7: {0: 0.57, 1: 0.8}, 6: {0: 0.56, 1: 0.7}})
    started = {(t, 0) for t in range(9)} | {(8, 1), (7, 1), (6, 1)}
    assert promotion(results, started, rungs=3, factor=3, maximize=True) == (8, 2)
    assert promotion(results, started | {(8, 2)}, rungs=3, factor=3, maximize=True) is None
    assert promotion(results, started, rungs=3, factor=3, maximize=False) == (6, 2)
