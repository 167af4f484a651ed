"""The dashboard's Jinja2 environment: templates from the package, autoescaped, with the
filters the pages share (times, durations, numbers) and what every page's frame needs.

>>> when(86_400 * 365.25 * 56)
'2026-01-01 00:00:00'
>>> number(0.912345), number(12345), number(None)
('0.9123', '12,345', '–')
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from streamfit.jobs.views import duration
from streamfit.server.security import csrf_token

__all__ = [
    "ENV",
    "STATIC",
    "TEMPLATES",
    "number",
    "page_context",
    "render",
    "render_text",
    "when",
]

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")


def when(t: float | None) -> str:
    """Epoch seconds as a UTC date and time."""
    if t is None:
        return "–"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def number(value: Any) -> str:
    """A metric as people read it: four significant digits, thousands separated."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "–" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude and (magnitude >= 1e6 or magnitude < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4g}" if magnitude < 1000 else f"{value:,.1f}"


def _chart_attr(chart: Any) -> Markup:
    """A chart as a ``data-chart`` attribute value (single-quoted in the templates)."""
    text = json.dumps(chart, separators=(",", ":"), allow_nan=False)
    # As Jinja's tojson: safe inside a single-quoted HTML attribute.
    text = (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("'", "\\u0027")
    )
    return Markup(text)  # escaped above


def _asset_version() -> str:
    """Changes when a static file does: browsers fetch the new one, not a cached old one."""
    stamps = [int(p.stat().st_mtime) for p in STATIC.rglob("*") if p.is_file()]
    return format(max(stamps, default=0), "x")


ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(
    when=when,
    number=number,
    duration=duration,
    chart=_chart_attr,
    pretty=lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str),
    clock=lambda iso: (iso or "–")[11:19] or "–",
)
_VERSION = _asset_version()
ENV.globals["static"] = lambda path: f"/static/{path}?v={_VERSION}"


def page_context(request: Request, section: str, **values: Any) -> dict[str, Any]:
    """What every page's frame needs (the section lit in the top bar, the CSRF token for
    its forms), then the page's own ``values``."""
    return {
        "request": request,
        "section": section,
        "csrf_token": csrf_token(request),
        "notice": None,
        "error": None,
        **values,
    }


def render(template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(render_text(template, context), status_code=status_code)


def render_text(template: str, context: dict[str, Any]) -> str:
    return ENV.get_template(template).render(context)
