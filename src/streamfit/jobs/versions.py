"""A job's published model versions (``OUTPUT/models/<version>/metrics.json``), newest first,
for ``jobs show`` and the server's job page.

>>> import json, tempfile
>>> out = Path(tempfile.mkdtemp())
>>> (out / "models" / "000002").mkdir(parents=True)
>>> doc = {"version": 2, "published_at": 1_800_000_000.0, "train:rows": 5000,
...        "window:rows": 1000, "window:loss": 0.31}
>>> _ = (out / "models" / "000002" / "metrics.json").write_text(json.dumps(doc))
>>> [(v["version"], v["rows"], v["window"]) for v in published_versions(str(out))]
[('000002', 5000, {'rows': 1000, 'loss': 0.31})]
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from streamfit.jobs.continuous import MODELS

__all__ = ["published_versions"]

_VERSION = re.compile(r"^\d{6,}$")
_WINDOW = "window:"
#: At most this many versions are read (a retention setting keeps fewer; this bounds a page).
MAX_VERSIONS = 100


def _iso(t: Any) -> str | None:
    if not isinstance(t, int | float):
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")


def _version(folder: Path) -> dict[str, Any]:
    try:
        doc = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):  # pruned while read, or written by an older trainer
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    rows = doc.get("train:rows")
    return {
        "version": folder.name,
        "published_at": _iso(doc.get("published_at")),
        "rows": rows if isinstance(rows, int) else None,
        "window": {k.removeprefix(_WINDOW): v for k, v in doc.items() if k.startswith(_WINDOW)},
    }


def published_versions(output: str | None) -> list[dict[str, Any]]:
    """The versions in ``OUTPUT/models/``, newest first: each its name, when it was
    published, the rows its state had seen, and its window's progressive metrics."""
    if output is None:
        return []
    folder = Path(output) / MODELS
    try:
        names = [p.name for p in folder.iterdir() if _VERSION.match(p.name)]
    except OSError:
        return []
    names.sort(key=int, reverse=True)
    return [_version(folder / name) for name in names[:MAX_VERSIONS]]
