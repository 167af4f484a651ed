"""The models a server answers for, by name: ``path`` (named after its folder) or
``name=path``. Each loads with the library's loader (safetensors + JSON, never pickle)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamfit.core.model import Model
from streamfit.core.registry import load_model
from streamfit.errors import ConfigError

__all__ = ["ServedModel", "load_served", "model_folder", "parse_model_arg"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class ServedModel:
    name: str
    path: Path
    model: Model


def model_folder(path: Path) -> Path:
    """The model folder ``path`` names: itself, or the ``model/`` of a training job's output."""
    if not (path / "model.json").exists() and (path / "model" / "model.json").exists():
        return path / "model"
    return path


def parse_model_arg(arg: str) -> tuple[str, Path]:
    """``(name, path)`` from ``path`` or ``name=path``; a path that exists wins over a split.

    >>> parse_model_arg("churn=/models/ll")
    ('churn', PosixPath('/models/ll'))
    >>> parse_model_arg("/models/kmeans/")
    ('kmeans', PosixPath('/models/kmeans'))
    """
    name, sep, rest = arg.partition("=")
    if sep and not os.path.exists(arg):
        path = Path(rest)
    else:
        path, name = Path(arg), Path(os.path.abspath(arg)).name
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{arg}: model name {name!r} must be letters, digits, '.', '_' or '-' (at most 63), "
            "starting with a letter or digit; give one as NAME=PATH"
        )
    return name, path


def load_served(args: Sequence[str], device: str = "cpu") -> list[ServedModel]:
    """Every model of ``args`` (see :func:`parse_model_arg`), loaded; names must differ."""
    if not args:
        raise ConfigError("give at least one model folder to serve")
    served: list[ServedModel] = []
    for arg in args:
        name, path = parse_model_arg(arg)
        if any(s.name == name for s in served):
            raise ConfigError(f"two models are named {name!r}: name one as NAME=PATH")
        if not path.is_dir():
            raise ConfigError(f"{path}: no such model folder")
        folder = model_folder(path)
        served.append(ServedModel(name, folder, load_model(folder, device)))
    return served
