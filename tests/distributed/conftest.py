"""A real local Ray for the distributed tests: started once, in a temp folder of its own.

``address="local"`` starts a new instance even where ``RAY_ADDRESS`` or
``/tmp/ray/ray_current_cluster`` name another one (the Ray Jobs backend's tests start a
``ray start --head`` cluster of their own), and the private temp folder keeps the two
from finding each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[ModuleType]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    temp = tempfile.mkdtemp(prefix="sf-ray-test-", dir="/tmp")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=temp,
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
