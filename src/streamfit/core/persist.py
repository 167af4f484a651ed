"""Folders of tensors (safetensors) plus JSON metadata: the on-disk form of states and models.

A folder holds ``<kind>.safetensors`` and ``<kind>.json``. The JSON names the format, its
version, the algorithm and the SHA-256 of the tensor file, so that a truncated, swapped or
tampered file is detected on load. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from streamfit.errors import CorruptStateError, IncompatibleStateError

__all__ = ["FORMAT_VERSION", "load_folder", "save_folder"]

FORMAT_VERSION = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
) -> Path:
    """Write ``tensors`` and ``meta`` as a ``kind`` folder at ``path``, atomically.

    The files are written into a sibling temporary folder, flushed, and the folder is renamed
    into place, so a reader (or a crash) sees the old folder or the new one, never a mix.
    """
    target = Path(path)
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
        json_file = tmp / f"{kind}.json"
        json_file.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        for f in (tensor_file, json_file):
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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptStateError(f"{json_file}: not valid JSON ({exc})") from exc
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
