"""Where runs happen: ``local`` (detached processes on this machine), ``ray`` (a Ray cluster,
through its Jobs API) and ``memory`` (runs a test drives, for the steps' own tests). ``base``
holds the protocol all three follow."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy checks here that each backend has every member the protocol declares
    from streamfit.jobs.backends.base import Backend
    from streamfit.jobs.backends.local import LocalBackend
    from streamfit.jobs.backends.memory import MemoryBackend
    from streamfit.jobs.backends.ray import RayBackend

    _BACKENDS: tuple[type[Backend], ...] = (LocalBackend, MemoryBackend, RayBackend)
