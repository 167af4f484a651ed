"""Connecting to Ray, and the actors a run starts on it.

Ray is imported here, only when a run asks for workers: it is the optional extra
``streamfit[ray]``. Without an address a run starts its own local Ray in a private temp
folder (``address="local"``): Ray's default, ``ray.init()``, would join whatever cluster
``RAY_ADDRESS`` or ``/tmp/ray/ray_current_cluster`` names, such as another user's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from streamfit.errors import ConfigError

__all__ = ["actor_prefix", "connect", "import_ray", "start_server", "start_worker"]

#: Named actors, so that an operator (or a test) can find a run's workers: ``ray list actors``.
actor_prefix = "streamfit"


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the dev environment has Ray
        raise ConfigError("training on workers needs Ray: pip install 'streamfit[ray]'") from exc
    return ray


@contextmanager
def connect(address: str | None, workers: int) -> Iterator[ModuleType]:
    """Ray, started locally (``address`` None) or joined at ``address``; a Ray this process
    already started (a notebook's, a test's) is used as it is and left running."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    temp = None
    if address is None:
        # A short path: Ray's socket names under it must fit in 107 bytes.
        temp = tempfile.mkdtemp(prefix="sf-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
        ray.init(
            address="local",
            num_cpus=max(workers, os.cpu_count() or 1),
            include_dashboard=False,
            _temp_dir=temp,
            log_to_driver=False,
        )
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def start_worker(ray: ModuleType, run_id: str, index: int, *args: Any) -> Any:
    """A :class:`~streamfit.distributed.worker.ShardWorker` actor on one CPU."""
    from streamfit.distributed.worker import ShardWorker

    cls = ray.remote(num_cpus=1)(ShardWorker)
    return cls.options(name=f"{actor_prefix}-{run_id}-worker-{index}").remote(index, *args)


def start_server(ray: ModuleType, run_id: str, *args: Any) -> Any:
    """A :class:`~streamfit.distributed.server.ParameterServer` actor. It asks for no CPU of
    its own: it mostly waits, and on a small machine a reserved CPU would idle a worker."""
    from streamfit.distributed.server import ParameterServer

    cls = ray.remote(num_cpus=0)(ParameterServer)
    return cls.options(name=f"{actor_prefix}-{run_id}-server").remote(*args)
