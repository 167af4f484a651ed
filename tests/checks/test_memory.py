"""The memory checks catch an estimate that drifts, a state too large that is not refused,
and an algorithm the memory check's child process cannot import."""

from __future__ import annotations

import pytest
import torch

from streamfit.algorithms.kmeans import KMeans
from streamfit.checks import (
    check_oversized_state_refused,
    check_peak_memory_flat,
    check_state_bytes,
)
from streamfit.core.state import State
from streamfit.errors import ConfigError


class Underestimates(KMeans):
    def state_bytes(self, n_features: int) -> int:
        return super().state_bytes(n_features) // 2


class NeverTooLarge(KMeans):
    """Allocates a small state whatever the width asked for."""

    def init_state(self, n_features: int, device: torch.device | str = "cpu") -> State:
        return super().init_state(8, device)


class RefusesVaguely(KMeans):
    def init_state(self, n_features: int, device: torch.device | str = "cpu") -> State:
        raise ConfigError("too large")


def test_state_bytes_catches_an_estimate_off_by_half() -> None:
    check_state_bytes(KMeans)
    with pytest.raises(AssertionError, match=r"state_bytes\(50\) = [\d,]+ but init_state"):
        check_state_bytes(Underestimates)


def test_a_state_too_large_must_be_refused_saying_how_much_it_needs() -> None:
    check_oversized_state_refused(KMeans)
    with pytest.raises(AssertionError, match="was not refused"):
        check_oversized_state_refused(NeverTooLarge)
    with pytest.raises(AssertionError, match="does not say how much"):
        check_oversized_state_refused(RefusesVaguely)


def test_the_memory_check_needs_a_class_its_child_can_import() -> None:
    class Local(KMeans):
        pass

    with pytest.raises(AssertionError, match="define it in a module"):
        check_peak_memory_flat(Local)
