"""``streamfit.train``: one training job, in this process or on Ray workers.

This module sits above both packages it chooses between, so that neither imports the
other: :mod:`streamfit.training` runs a job and defines how its epochs may run elsewhere
(:class:`~streamfit.training.trainer.Fitter`), :mod:`streamfit.distributed` provides such a
fitter for Ray workers, and :func:`train` picks it when asked for ``workers``. (A registry
the distributed package filled at import would need something to import it first; here the
choice is one visible ``if``.) Ray itself is imported only when a run starts workers.

For example, ``streamfit.train("kmeans", "data/", hyperparameters={"k": 10}, workers=4)``
trains four Ray workers (a local Ray cluster; tests/distributed runs it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from streamfit.core.state import State
from streamfit.data.checks import OnBadRows
from streamfit.data.source import Source
from streamfit.distributed.driver import RayFitter
from streamfit.distributed.options import DistributedOptions
from streamfit.errors import ConfigError
from streamfit.training import trainer
from streamfit.training.trainer import AlgorithmLike, TrainResult

__all__ = ["train"]


def train(
    algorithm: AlgorithmLike,
    train: str | Source,
    *,
    validation: str | Source | None = None,
    test: str | Source | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    output: str | os.PathLike[str] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_seconds: float | None = 60.0,
    checkpoint_batches: int | None = None,
    init_state: str | os.PathLike[str] | State | None = None,
    epochs: int | None = None,
    device: str | torch.device = "cpu",
    content_type: str | None = None,
    label_column: str | None = None,
    on_bad_rows: OnBadRows = "error",
    progress: bool | None = None,
    max_batches: int | None = None,
    threads: int | None = None,
    sweep: str | tuple[str, list[Any]] | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    sync: bool = False,
    exchange_every: int | None = None,
    auxiliary: str | os.PathLike[str] | None = None,
    stop_words: bool | None = None,
    publish_every: float | None = None,
    keep_versions: int = 5,
) -> TrainResult:
    """Train ``algorithm`` on the ``train`` channel (see :func:`streamfit.training.trainer.train`
    for every option but ``workers``, ``ray_address``, ``sync`` and ``exchange_every``).

    ``workers`` trains on that many Ray workers, each on a disjoint shard of ``train``, on
    the cluster at ``ray_address`` (default: a new local Ray); see :mod:`streamfit.distributed`
    for ``sync`` and ``exchange_every``.
    """
    fitter = None
    if workers is not None:
        fitter = RayFitter(DistributedOptions.build(workers, ray_address, sync, exchange_every))
    elif ray_address is not None or sync or exchange_every is not None:
        raise ConfigError("ray_address, sync and exchange_every need workers")
    return trainer.train(
        algorithm,
        train,
        validation=validation,
        test=test,
        hyperparameters=hyperparameters,
        output=output,
        checkpoint_dir=checkpoint_dir,
        checkpoint_seconds=checkpoint_seconds,
        checkpoint_batches=checkpoint_batches,
        init_state=init_state,
        epochs=epochs,
        device=device,
        content_type=content_type,
        label_column=label_column,
        on_bad_rows=on_bad_rows,
        progress=progress,
        max_batches=max_batches,
        threads=threads,
        sweep=sweep,
        fitter=fitter,
        auxiliary=auxiliary,
        stop_words=stop_words,
        publish_every=publish_every,
        keep_versions=keep_versions,
    )
