"""The public API is what ``__all__`` says, and all of it exists."""

from __future__ import annotations

import streamfit


def test_all_names_exist_and_are_sorted_by_kind() -> None:
    for name in streamfit.__all__:
        assert hasattr(streamfit, name), name
    assert len(set(streamfit.__all__)) == len(streamfit.__all__)


def test_main_entry_points_are_exported() -> None:
    for name in (
        "train",
        "predict",
        "finalize",
        "load_model",
        "open_source",
        "State",
        "Batch",
        "algorithm_names",
        "DataError",
        "TrainingInterrupted",
    ):
        assert name in streamfit.__all__
