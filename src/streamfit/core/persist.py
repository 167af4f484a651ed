"""Folders of tensors (safetensors) plus JSON metadata: the on-disk form of states and models.

A folder holds ``<kind>.safetensors`` and ``<kind>.json``. The JSON names the format, its
version, the algorithm and the SHA-256 of the tensor file, and ends with ``sha256``: the
SHA-256 of the rest of the JSON, so that a truncated, swapped or tampered file of either kind is
detected on load (a JSON edited to disagree with its tensors included). Nothing is ever
unpickled.

Saving over an existing folder replaces it only if it is a streamfit folder of the same kind:
anything else there is refused, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from streamfit.errors import ConfigError, CorruptStateError, IncompatibleStateError

__all__ = ["FORMAT_VERSION", "check_replaceable", "load_folder", "save_folder"]

#: 2: the JSON carries a checksum of itself (version 1 files load without that check).
FORMAT_VERSION = 2
_SELF_SUM = "sha256"
#: The JSON's list of the other files written in the folder with it.
_EXTRA = "extra_files"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_sum(doc: dict[str, Any]) -> str:
    """The checksum of a folder's JSON, over everything but the checksum itself."""
    body = {k: v for k, v in doc.items() if k != _SELF_SUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def check_replaceable(path: str | os.PathLike[str], kind: str) -> None:
    """Refuse (:class:`ConfigError`) to save a ``kind`` folder over ``path`` when something that
    is not a streamfit ``kind`` folder is there: saving would delete it."""
    target = Path(path)
    if not target.exists() and not target.is_symlink():
        return
    what = f"{target} exists and is not a streamfit {kind} folder"
    if target.is_symlink() or not target.is_dir():
        raise ConfigError(f"{what} (a file or link): refusing to replace it")
    ours = {f"{kind}.json", f"{kind}.safetensors"}
    doc = None
    if (target / f"{kind}.json").exists():
        try:
            doc = json.loads((target / f"{kind}.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != f"streamfit-{kind}":
            raise ConfigError(f"{what}: refusing to replace it")
        # The files it says it wrote beside them (a model's topics.json) are its own too.
        ours |= {name for name in doc.get(_EXTRA, []) if isinstance(name, str)}
    others = sorted(p.name for p in target.iterdir() if p.name not in ours)
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise ConfigError(f"{what} (it holds {shown}): refusing to replace it")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_folder(
    path: str | os.PathLike[str],
    kind: str,
    algorithm: str,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    extra: Mapping[str, bytes] | None = None,
) -> Path:
    """Write ``tensors`` and ``meta`` as a ``kind`` folder at ``path``, atomically, with the
    ``extra`` files (name: contents) beside them, listed in the JSON as its own.

    The files are written into a sibling temporary folder, flushed, and the folder is renamed
    into place, so a reader (or a crash) sees the old folder or the new one, never a mix.
    """
    target = Path(path)
    check_replaceable(target, kind)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        tensor_file = tmp / f"{kind}.safetensors"
        cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(cpu, str(tensor_file))
        doc = {
            "format": f"streamfit-{kind}",
            "format_version": FORMAT_VERSION,
            "algorithm": algorithm,
            "tensors_sha256": _sha256(tensor_file),
            **meta,
        }
        files = [tensor_file]
        for name, contents in (extra or {}).items():
            if Path(name).name != name or name.startswith(".") or name.startswith(kind + "."):
                raise ConfigError(f"{kind} folder: cannot write an extra file named {name!r}")
            (tmp / name).write_bytes(contents)
            files.append(tmp / name)
        if extra:
            doc[_EXTRA] = sorted(extra)
        doc[_SELF_SUM] = _json_sum(doc)
        json_file = tmp / f"{kind}.json"
        json_file.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        for f in (*files, json_file):
            with f.open("rb+") as fh:
                os.fsync(fh.fileno())
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
        tmp.rename(target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_folder(
    path: str | os.PathLike[str], kind: str, algorithm: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a ``kind`` folder written by :func:`save_folder`, checking everything it can."""
    folder = Path(path)
    json_file = folder / f"{kind}.json"
    tensor_file = folder / f"{kind}.safetensors"
    if not folder.is_dir():
        raise CorruptStateError(f"{folder}: no such {kind} folder")
    for f in (json_file, tensor_file):
        if not f.is_file():
            raise CorruptStateError(f"{f}: missing; is {folder} a streamfit {kind} folder?")
    try:
        doc = json.loads(json_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CorruptStateError(f"{json_file}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise CorruptStateError(f"{json_file}: unreadable ({exc.strerror})") from exc
    if not isinstance(doc, dict) or doc.get("format") != f"streamfit-{kind}":
        raise CorruptStateError(f"{json_file}: not a streamfit {kind} file")
    version = doc.get("format_version")
    if not isinstance(version, int):
        raise CorruptStateError(f"{json_file}: no format_version")
    if version > FORMAT_VERSION:
        raise IncompatibleStateError(
            f"{json_file}: format version {version} was written by a newer streamfit; "
            f"this one reads up to version {FORMAT_VERSION}"
        )
    if version >= 2 and doc.get(_SELF_SUM) != _json_sum(doc):
        raise CorruptStateError(
            f"{json_file}: contents do not match its checksum (modified or damaged)"
        )
    if algorithm is not None and doc.get("algorithm") != algorithm:
        raise IncompatibleStateError(
            f"{json_file}: this {kind} belongs to algorithm {doc.get('algorithm')!r}, "
            f"not {algorithm!r}"
        )
    if _sha256(tensor_file) != doc.get("tensors_sha256"):
        raise CorruptStateError(
            f"{tensor_file}: contents do not match the checksum in {json_file.name} "
            "(truncated or modified)"
        )
    try:
        tensors = load_file(str(tensor_file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CorruptStateError(f"{tensor_file}: unreadable ({exc})") from exc
    return tensors, doc
