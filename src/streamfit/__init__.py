"""streamfit: train models on data that never stops growing.

Names are imported on first use, so that ``streamfit jobs ...`` and the scheduler start
without loading PyTorch.

>>> import streamfit
>>> "linear-learner" in streamfit.algorithm_names()
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Algorithm": "streamfit.core.algorithm",
    "CSR": "streamfit.core.batch",
    "Batch": "streamfit.core.batch",
    "Model": "streamfit.core.model",
    "algorithm_names": "streamfit.core.registry",
    "get_algorithm": "streamfit.core.registry",
    "load_model": "streamfit.core.registry",
    "Position": "streamfit.core.state",
    "State": "streamfit.core.state",
    "Batcher": "streamfit.data.batcher",
    "Source": "streamfit.data.source",
    "SourceOptions": "streamfit.data.source",
    "open_source": "streamfit.data.source",
    "ConfigError": "streamfit.errors",
    "CorruptStateError": "streamfit.errors",
    "DataError": "streamfit.errors",
    "IncompatibleStateError": "streamfit.errors",
    "StateError": "streamfit.errors",
    "StreamfitError": "streamfit.errors",
    "TrainingDiverged": "streamfit.errors",
    "TrainingInterrupted": "streamfit.errors",
    "finalize": "streamfit.training.inference",
    "predict": "streamfit.training.inference",
    "predict_records": "streamfit.training.inference",
    "TrainResult": "streamfit.training.trainer",
    "train": "streamfit.fitting",
}

__all__ = [
    "CSR",
    "Algorithm",
    "Batch",
    "Batcher",
    "ConfigError",
    "CorruptStateError",
    "DataError",
    "IncompatibleStateError",
    "Model",
    "Position",
    "Source",
    "SourceOptions",
    "State",
    "StateError",
    "StreamfitError",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "__version__",
    "algorithm_names",
    "finalize",
    "get_algorithm",
    "load_model",
    "open_source",
    "predict",
    "predict_records",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'streamfit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from streamfit.core.algorithm import Algorithm
    from streamfit.core.batch import CSR, Batch
    from streamfit.core.model import Model
    from streamfit.core.registry import algorithm_names, get_algorithm, load_model
    from streamfit.core.state import Position, State
    from streamfit.data.batcher import Batcher
    from streamfit.data.source import Source, SourceOptions, open_source
    from streamfit.errors import (
        ConfigError,
        CorruptStateError,
        DataError,
        IncompatibleStateError,
        StateError,
        StreamfitError,
        TrainingDiverged,
        TrainingInterrupted,
    )
    from streamfit.fitting import train
    from streamfit.training.inference import finalize, predict, predict_records
    from streamfit.training.trainer import TrainResult
