"""The models a server answers for, by name: ``path`` (named after its folder) or
``name=path``. Each loads with the library's loader (safetensors + JSON, never pickle).

A path may also be a continuous training's output folder (or its ``models/``): the model is
then the version its ``latest`` link names, followed as it moves (:mod:`.versions`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamfit.core.model import Model
from streamfit.core.registry import load_model
from streamfit.errors import ConfigError
from streamfit.training.publish import LATEST, MODELS

__all__ = [
    "ServedModel",
    "latest_link",
    "link_target",
    "load_served",
    "load_version",
    "model_folder",
    "parse_model_arg",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class ServedModel:
    """A model as served: for a followed one, also its version and the link naming it."""

    name: str
    path: Path
    model: Model
    version: str | None = None
    link: Path | None = None


def latest_link(path: Path) -> Path | None:
    """The ``latest`` link of ``path`` (an output folder or its ``models/``), if it has one."""
    for link in (path / MODELS / LATEST, path / LATEST):
        if link.is_symlink():
            return link
    return None


def link_target(link: Path) -> str:
    """The version folder's name ``link`` points to (one ``readlink``)."""
    return Path(os.readlink(link)).name


def load_version(name: str, link: Path, device: str, version: str | None = None) -> ServedModel:
    """Model ``name`` at ``version`` (by default, the one ``link`` points to now)."""
    version = version if version is not None else link_target(link)
    folder = link.parent / version
    if not folder.is_dir():
        raise ConfigError(f"{link}: points to {version}, which is no folder")
    folder = model_folder(folder)
    return ServedModel(name, folder, load_model(folder, device), version, link)


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
        if name == MODELS and (path / LATEST).is_symlink():
            name = Path(os.path.abspath(arg)).parent.name  # a training output's models/
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
        link = latest_link(path)
        if link is not None:
            served.append(load_version(name, link, device))
            continue
        if (path / MODELS).is_dir() and not (path / "model").is_dir():
            raise ConfigError(f"{path}: no version published yet ({path / MODELS / LATEST})")
        folder = model_folder(path)
        served.append(ServedModel(name, folder, load_model(folder, device)))
    return served
