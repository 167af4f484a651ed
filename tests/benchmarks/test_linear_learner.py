"""benchmarks/linear_learner.py's summary of rounds (the figures behind ``x VW``)."""

from __future__ import annotations

import doctest

from tests.benchmarks import import_benchmark

linear_learner = import_benchmark("linear_learner")


def test_the_doctests_pass() -> None:
    assert doctest.testmod(linear_learner).failed == 0


def test_each_round_is_compared_with_the_baseline_of_its_own_round() -> None:
    runs = [
        {"name": "VW", "kind": "sparse", "round": 0, "wall": 2.0, "auc": 0.89},
        {"name": "sf", "kind": "sparse", "round": 0, "wall": 5.0, "auc": 0.88},
        {"name": "VW", "kind": "sparse", "round": 1, "wall": 10.0, "auc": 0.89},
        {"name": "sf", "kind": "sparse", "round": 1, "wall": 9.0, "auc": 0.88},
        {"name": "sf", "kind": "sparse", "round": 2, "error": "exit status 1"},
        {"name": "floor", "kind": "dense", "round": 0, "wall": 1.0},
    ]
    rows = {r["name"]: r for r in linear_learner.summarise(runs, "VW")}
    # medians of 2.5 and 0.9, not 7.0 / 6.0 from the medians of the walls
    assert rows["sf"]["vs_baseline"] == 1.7
    assert rows["sf"]["wall"] == 7.0 and rows["sf"]["runs"] == 2
    assert "vs_baseline" not in rows["floor"]  # no VW among the dense runs
