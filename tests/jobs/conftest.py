"""Fixtures for the job manager's tests: a store and a local backend in a temporary home."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from streamfit.jobs.backends.local import Capacity, LocalBackend
from streamfit.jobs.context import StepContext
from streamfit.jobs.store import Store


@pytest.fixture
def ctx(tmp_path: Path) -> StepContext:
    home = tmp_path / "home"
    store = Store.open(home)
    backend = LocalBackend(home, Capacity(cpus=2, gpus=0, memory_mb=8000))
    return StepContext(
        store, backend, home, rand=random.Random(0), capacity_backoff=0.05, capacity_backoff_max=0.2
    )
