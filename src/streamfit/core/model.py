"""A trained model: tensors plus JSON metadata, with ``predict``."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import torch

from streamfit.core.batch import Features
from streamfit.core.persist import load_folder, save_folder
from streamfit.core.windows import SeriesReading
from streamfit.errors import ConfigError

__all__ = ["Model"]


class Model(ABC):
    """Base of every algorithm's model.

    A model is immutable after ``finalize``: ``tensors`` and ``meta`` are all it is, so it
    saves and loads without pickle and moves between devices freely.
    """

    algorithm: ClassVar[str]
    #: Files a model writes in its folder besides model.json and model.safetensors (views
    #: for people, such as a topic model's topics.json): :meth:`extra_documents` makes them.
    extra_files: ClassVar[tuple[str, ...]] = ()

    def __init__(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.tensors = tensors
        self.meta = meta

    @abstractmethod
    def predict(self, features: Features) -> dict[str, torch.Tensor]:
        """Predictions for each row, as tensors whose first dimension is the row."""

    @abstractmethod
    def records(self, predictions: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """One JSON-able answer per row, shaped as SageMaker's algorithm answers."""

    def input_series(self) -> SeriesReading | None:
        """How inputs to forecast are read, for a model of time series (else None: rows)."""
        return None

    def configured(self, config: Mapping[str, Any] | None) -> Model:
        """This model under an inference configuration (SageMaker's, for forecasters); a
        model that takes none refuses one."""
        if config:
            raise ConfigError(f"{self.algorithm}: takes no inference configuration")
        return self

    @property
    def device(self) -> torch.device:
        for t in self.tensors.values():
            return t.device
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> Self:
        self.tensors = {k: v.to(device) for k, v in self.tensors.items()}
        return self

    def extra_documents(self) -> dict[str, bytes]:
        """The contents of each of ``extra_files``, by name."""
        return {}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``model.safetensors`` + ``model.json`` (and ``extra_files``) atomically."""
        extra = self.extra_documents()
        if sorted(extra) != sorted(self.extra_files):
            raise ConfigError(
                f"{self.algorithm}: a model writes {sorted(self.extra_files)}, not {sorted(extra)}"
            )
        meta = {"meta": self.meta}
        return save_folder(path, "model", self.algorithm, self.tensors, meta, extra)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Self:
        tensors, doc = load_folder(path, "model", cls.algorithm)
        return cls({k: v.to(device) for k, v in tensors.items()}, dict(doc.get("meta", {})))
