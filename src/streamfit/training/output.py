"""A training job's output folder: checked before any data is read, written atomically, and
never over anything streamfit did not write.

``OUTPUT/model`` and ``OUTPUT/state`` are replaced only when they are streamfit folders of
that kind (``core.persist.check_replaceable``); ``OUTPUT/metrics.json`` is written under a
temporary name and renamed. An output (or checkpoint folder) inside a folder that is read as
input would be read back as data by the next run, so it is refused; so is an input that
training would overwrite.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

from streamfit.core.model import Model
from streamfit.core.persist import check_replaceable
from streamfit.core.state import State
from streamfit.data.source import FileSource, Source
from streamfit.errors import ConfigError

__all__ = ["check_output", "write_output"]

#: What training writes in its output folder.
_WRITES = ("model", "state", "metrics.json", "sweep", "sweep.json", "curves.jsonl")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _writable_folder(folder: Path, what: str) -> None:
    """``folder`` is (or can be made) a folder this process can write in."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"{what} {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {folder}: cannot write in {existing} (permission denied)")


def _local_paths(source: Source | None) -> list[Path]:
    if not isinstance(source, FileSource):
        return []
    return [Path(p).resolve() for p in source.paths if "://" not in p]


def _read_folder(uri: str | os.PathLike[str] | Source | None) -> Path | None:
    """The local folder a channel reads as a whole (recursively), if it is one."""
    if isinstance(uri, Source) or uri is None or "://" in str(uri) or str(uri) == "-":
        return None
    path = Path(uri)
    return path.resolve() if path.is_dir() else None


def check_output(
    output: str | os.PathLike[str],
    channels: Mapping[str, tuple[str | os.PathLike[str] | Source | None, Source | None]],
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Refuse, before anything is read or trained, an ``output`` that cannot be written or
    that would destroy or mix with an input. ``channels`` maps a channel's name to its URI
    and its opened source."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} is a file: give a folder (it gets model/, state/ ...)")
    _writable_folder(out, "--output")
    check_replaceable(out / "model", "model")
    check_replaceable(out / "state", "state")
    for name in ("metrics.json", "sweep.json"):
        if (out / name).is_dir():
            raise ConfigError(f"{out / name} is a folder: refusing to replace it")
    resolved = out.resolve()
    written = [resolved / name for name in _WRITES]
    targets = [("--output", resolved)]
    if checkpoint_dir is not None:
        _writable_folder(Path(checkpoint_dir), "--checkpoint-dir")
        targets.append(("--checkpoint-dir", Path(checkpoint_dir).resolve()))
    for channel, (uri, source) in channels.items():
        for path in _local_paths(source):
            for target in written:
                if _inside(path, target):
                    raise ConfigError(
                        f"--{channel} reads {path}, which training writes as {target}: "
                        "choose another --output"
                    )
        folder = _read_folder(uri)
        for option, target in targets:
            if folder is not None and _inside(target, folder):
                raise ConfigError(
                    f"{option} {target} is inside {folder}, which --{channel} reads: what "
                    "training writes there would be read back as data; choose a folder "
                    "outside it"
                )


def write_output(
    output: str | os.PathLike[str],
    model: Model,
    state: State,
    metrics: Mapping[str, float],
) -> Path:
    """``output/model``, ``output/state`` and ``output/metrics.json`` (non-finite as null)."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model")
    state.save(out / "state")
    clean = {k: v if math.isfinite(v) else None for k, v in metrics.items()}
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
    tmp.replace(out / "metrics.json")
    return out
