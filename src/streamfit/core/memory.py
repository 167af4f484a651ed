"""Sizes checked before they are allocated: a state or a batch that cannot fit is refused up
front with the bytes it would take, instead of failing deep inside an allocator (or, worse,
swapping the machine to a halt).

>>> human_bytes(3 * 2**40)
'3.0 TB'
>>> check_fits("a state", 2**70, available=2**30)
Traceback (most recent call last):
...
streamfit.errors.ConfigError: a state needs 1024.0 EB but only 1.0 GB of memory is available
"""

from __future__ import annotations

import os
from pathlib import Path

from streamfit.errors import ConfigError

__all__ = ["available_bytes", "check_fits", "human_bytes"]

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB", "EB")


def human_bytes(n: float) -> str:
    for unit in _UNITS[:-1]:
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} {_UNITS[-1]}"


def _cgroup_room() -> int | None:
    """What this process's cgroup (v2) still lets it allocate, if it is limited."""
    try:
        line = Path("/proc/self/cgroup").read_text().splitlines()[0]
        folder = Path("/sys/fs/cgroup") / line.split("::", 1)[1].lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((folder / "memory.current").read_text())
    except (OSError, IndexError, ValueError):
        return None


def available_bytes() -> int:
    """Memory this process can still take: the kernel's MemAvailable (what can be had without
    swapping), or less where a cgroup limits the process."""
    room: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                room = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if room is None:  # not Linux: all physical memory is the best guess
        room = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limited = _cgroup_room()
    return room if limited is None else min(room, limited)


def check_fits(what: str, needed: int, *, hint: str = "", available: int | None = None) -> None:
    """Raise :class:`ConfigError` when ``needed`` bytes exceed the memory available."""
    room = available_bytes() if available is None else available
    if needed > room:
        raise ConfigError(
            f"{what} needs {human_bytes(needed)} but only {human_bytes(room)} of memory is "
            f"available" + (f"; {hint}" if hint else "")
        )
