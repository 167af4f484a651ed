"""The training checks pass on a sound algorithm (tests/core/test_algorithm_checks.py) and
catch the faults they are for, shown here on broken variants of a real one."""

from __future__ import annotations

import math

import pytest
import torch

from streamfit.algorithms.pca import PCA
from streamfit.checks import (
    CheckData,
    assert_same_state,
    check_merge_within_tolerance,
    check_resume_equals_uninterrupted,
    check_seeding,
    make_check_data,
)
from streamfit.core.batch import Batch
from streamfit.core.state import State


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> CheckData:
    return make_check_data(tmp_path_factory.mktemp("checks"))


class GlobalRandom(PCA):
    """Draws from torch's global generator instead of its state's."""

    def update(self, state: State, batch: Batch) -> float:
        loss = super().update(state, batch)
        state.tensors["sum"][0] += torch.rand(()).item()
        return loss


class CountsOutsideTheState(PCA):
    """Keeps a count of batches on itself, which a resumed run starts again from zero."""

    calls = 0

    def update(self, state: State, batch: Batch) -> float:
        self.calls += 1
        if self.calls == 10:
            state.tensors["sum"][0] += 1.0
        return super().update(state, batch)


class DropsAShard(PCA):
    """Merges ``a`` with itself: as many rows as both shards, but only ``a``'s data."""

    def merge(self, a: State, b: State) -> State:
        return super().merge(a, a)


def test_seeding_catches_draws_from_the_global_generator(data: CheckData) -> None:
    with pytest.raises(AssertionError, match="two runs with the same seed: tensor 'sum'"):
        check_seeding(GlobalRandom, data)


def test_resume_catches_what_is_kept_outside_the_state(data: CheckData) -> None:
    with pytest.raises(AssertionError, match=r"uninterrupted and resumed \(epochs=1\)"):
        check_resume_equals_uninterrupted(CountsOutsideTheState, data)


def test_merge_catches_a_merge_that_loses_a_shard(data: CheckData) -> None:
    with pytest.raises(AssertionError, match="more than merge_tolerance"):
        check_merge_within_tolerance(DropsAShard, data)


def test_a_check_makes_its_own_data_when_given_none() -> None:
    with pytest.raises(AssertionError, match="two runs with the same seed"):
        check_seeding(GlobalRandom)


def test_assert_same_state_names_the_first_difference() -> None:
    def state() -> State:
        return State("pca", {}, 2, {"sum": torch.zeros(2)}, meta={"k": 1})

    a, b = state(), state()
    assert_same_state(a, b)
    b.tensors["sum"][1] = math.pi
    with pytest.raises(AssertionError, match="x: tensor 'sum' differs"):
        assert_same_state(a, b, "x")
    b = state()
    b.meta["k"] = 2
    with pytest.raises(AssertionError, match="meta differs"):
        assert_same_state(a, b)
    b = state()
    b.generator.manual_seed(7)
    with pytest.raises(AssertionError, match="generators"):
        assert_same_state(a, b)
