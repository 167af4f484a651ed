"""What a state was trained on: the identity of its train channel, recorded in every checkpoint
(``State.inputs["train"]``) and checked when a run resumes from one.

A checkpoint's position counts rows of one particular input. Resuming it over other data (a file
rewritten, a folder with new files, another query) would skip rows that were never seen or fold
some twice, and a finished checkpoint would return its old model without reading the new data at
all. So resuming is refused unless the input is the one the checkpoint was trained on; continuing
a state on new data is what ``init_state`` (``--init-state``) is for.

Files are identified by path, size and modification time (cheap, and what ``make`` trusts), a
query by its URL (password hidden) and text. A pipe delivers new data by nature: it has no
identity to check.
"""

from __future__ import annotations

from typing import Any

import fsspec

from streamfit.data.source import FileSource, PipeSource, Source
from streamfit.errors import IncompatibleStateError

__all__ = ["check_same_input", "data_identity"]


def _modified(info: dict[str, Any]) -> str | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "ETag", "etag"):
        if info.get(key) is not None:
            return str(info[key])
    return None


def data_identity(source: Source) -> dict[str, Any]:
    """A JSON-able description of what ``source`` reads, equal for the same data."""
    if isinstance(source, FileSource):
        files = []
        for path in source.paths:
            fs, inner = fsspec.core.url_to_fs(path)
            info = fs.info(inner)
            files.append({"path": path, "size": info.get("size"), "modified": _modified(info)})
        return {"kind": "files", "uri": source.name, "files": files}
    if isinstance(source, PipeSource):
        return {"kind": "pipe", "uri": source.name}
    return {"kind": type(source).__name__, "uri": source.name}


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """What differs between two identities, in words; None if they are the same data."""
    if old.get("kind") == "pipe" and new.get("kind") == "pipe":
        return None  # a pipe's next rows are new data: nothing to compare
    if old.get("kind") != new.get("kind") or old.get("uri") != new.get("uri"):
        return f"it was trained on {old.get('uri')!r}, not {new.get('uri')!r}"
    if old.get("kind") != "files":
        return None
    before = {f["path"]: f for f in old.get("files", [])}
    after = {f["path"]: f for f in new.get("files", [])}
    if added := sorted(set(after) - set(before)):
        return f"{added[0]} is new" + (f" (and {len(added) - 1} more)" if len(added) > 1 else "")
    if gone := sorted(set(before) - set(after)):
        return f"{gone[0]} is gone" + (f" (and {len(gone) - 1} more)" if len(gone) > 1 else "")
    for path, was in before.items():
        now = after[path]
        if was.get("size") != now.get("size"):
            return f"{path} was {was.get('size')} bytes and is now {now.get('size')}"
        if was.get("modified") != now.get("modified"):
            return f"{path} was modified since"
    return None


def check_same_input(checkpoint: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
    """Refuse to resume ``checkpoint`` (trained on ``old``) over the input ``new``.

    >>> a = {"kind": "files", "uri": "d/", "files": [{"path": "/d/1", "size": 5, "modified": "1"}]}
    >>> b = {**a, "files": [*a["files"], {"path": "/d/2", "size": 3, "modified": "2"}]}
    >>> check_same_input("ck", a, a)
    >>> check_same_input("ck", a, b)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamfit.errors.IncompatibleStateError: ck: cannot resume on other data (/d/2 is new): ...
    """
    if old is None:  # written before checkpoints recorded their input
        return
    why = _difference(old, new)
    if why is not None:
        raise IncompatibleStateError(
            f"{checkpoint}: cannot resume on other data ({why}): to continue training this "
            "state on new data, pass it as --init-state; to start afresh, use another "
            "--checkpoint-dir"
        )
