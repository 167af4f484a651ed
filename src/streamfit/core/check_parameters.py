"""What the shared checks (:mod:`streamfit.checks`) need to know about one algorithm.

Each algorithm class declares its own, as ``check_parameters``; the checks find every
registered algorithm through the registry, so registering a new one is what brings it under
them. The data are named, not built: declaring them costs nothing at import, and the memory
check's child process rebuilds them from the name.

>>> p = CheckParameters(
...     hyperparameters={"k": 4},
...     metric="msd",
...     memory_hyperparameters={"k": 5},
...     memory_data=GeneratedData("cluster_task", (20, 5)),
... )
>>> p.data
GeneratedData(task='linear_task', args=(8, 'binary'), options={'seed': 3})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckParameters", "GeneratedData"]


@dataclass(frozen=True)
class GeneratedData:
    """A generated data set: ``task(*args, **options)`` of :mod:`streamfit.datagen` (or
    ``"package.module:function"`` for a generator of one's own), which returns an object whose
    ``blocks(n_rows, block=..., offset=...)`` yields record batches. Arguments are JSON values.
    """

    task: str
    args: tuple[Any, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckParameters:
    """How the shared checks train and judge one algorithm, on small data so that they are
    fast."""

    #: Hyperparameters of every training run of the checks (small: a few thousand rows).
    hyperparameters: Mapping[str, Any]
    #: A validation metric of :meth:`~streamfit.core.algorithm.Algorithm.evaluate`, lower
    #: better, by which a merge is compared with one pass (within ``merge_tolerance``).
    metric: str
    #: Hyperparameters and data of the memory check, which trains on 10^4 and 10^6 rows.
    memory_hyperparameters: Mapping[str, Any]
    memory_data: GeneratedData
    #: Hyperparameters that make the state too large for any memory, where its width is not
    #: what does (a forecaster's windows): the oversized check sets them instead of 10^12
    #: features.
    oversized: Mapping[str, Any] = field(default_factory=dict)
    #: Added to ``hyperparameters`` where several epochs must all run (no early stop).
    multi_epoch: Mapping[str, Any] = field(default_factory=dict)
    #: The data of the other checks: written once as training, two shards, validation and
    #: test files, whose width ``hyperparameters`` must accept.
    data: GeneratedData = GeneratedData("linear_task", (8, "binary"), {"seed": 3})
