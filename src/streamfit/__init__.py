"""streamfit: train models on data that never stops growing.

>>> import streamfit
>>> "linear-learner" in streamfit.algorithm_names()
True
"""

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
    TrainingInterrupted,
)
from streamfit.training.inference import finalize, predict, predict_records
from streamfit.training.trainer import TrainResult, train

__version__ = "0.1.0"

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
