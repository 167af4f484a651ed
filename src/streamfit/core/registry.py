"""Algorithms by name: ``linear-learner``, later ``kmeans``, ``pca``, ..."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import TypeVar

from streamfit.core.algorithm import Algorithm
from streamfit.core.model import Model
from streamfit.errors import CorruptStateError, UnknownAlgorithmError

__all__ = ["algorithm_names", "get_algorithm", "load_model", "register"]

_REGISTRY: dict[str, type[Algorithm]] = {}  # type: ignore[type-arg]
_BUILTINS = "streamfit.algorithms"

A = TypeVar("A", bound=type[Algorithm])  # type: ignore[type-arg]


def register(cls: A) -> A:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    importlib.import_module(_BUILTINS)


def algorithm_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get_algorithm(name: str) -> type[Algorithm]:  # type: ignore[type-arg]
    """The algorithm class registered as ``name`` (``linear_learner`` also finds it)."""
    _load_builtins()
    key = name.strip().lower().replace("_", "-")
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownAlgorithmError(f"unknown algorithm {name!r} (known: {known})") from None


def load_model(path: str | os.PathLike[str], device: str = "cpu") -> Model:
    """Load any model folder, whatever its algorithm."""
    meta_file = Path(path) / "model.json"
    try:
        name = json.loads(meta_file.read_text())["algorithm"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptStateError(f"{meta_file}: not a readable streamfit model ({exc})") from exc
    return get_algorithm(str(name)).model_class.load(path, device)
