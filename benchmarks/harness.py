"""What every benchmark script shares (they run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import resource
from pathlib import Path

__all__ = ["cpu_seconds", "peak_rss_mb"]


def peak_rss_mb() -> float:
    """This process's peak RSS since exec, from VmHWM (``ru_maxrss`` would include the
    parent's peak before the fork: Linux keeps it across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads: steadier than wall time
    when other work shares the machine (it does not count time spent waiting for a core)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
