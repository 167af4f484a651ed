"""What the dashboard's charts draw, as plain data: the page puts one :class:`Chart` in a
``data-chart`` attribute and ``static/dashboard.js`` hands it to uPlot. Deciding here what a
chart shows (series, stacking, units, log axes) keeps the script small and the choices tested.

>>> chart = success_rate_chart([{"group": "2026-01-02", "success_rate": 0.5}])
>>> chart["xs"], chart["series"][0]["values"], chart["y_unit"]
([1767312000.0], [0.5], 'percent')
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

__all__ = [
    "Chart",
    "Series",
    "curve_charts",
    "daily",
    "duration_charts",
    "hyperparameter_charts",
    "outcome_chart",
    "retries_chart",
    "success_rate_chart",
]

#: The statuses' colours, as in dashboard.css.
COLORS = {
    "completed": "#15803d",
    "failed": "#dc2626",
    "stopped": "#d97706",
    "in_flight": "#2563eb",
}
#: Other series, in turn.
PALETTE = ["#2f5bd3", "#e8590c", "#0f9d8a", "#9c36b5", "#c92a2a", "#5c940d", "#1c7ed6", "#f59f00"]
KIND_COLORS = {
    "capacity": "#7c3aed",
    "infrastructure": "#e8590c",
    "algorithm": "#dc2626",
    "invalid": "#6b7280",
}


class Series(TypedDict):
    label: str
    color: str
    values: list[float | None]


class Chart(TypedDict):
    kind: str  # "bars", "lines" or "scatter"
    title: str
    xs: list[float]
    series: list[Series]
    x_label: str
    y_label: str
    x_time: bool  # xs are epoch seconds
    x_log: bool
    y_unit: str  # "count", "percent", "seconds" or "value"
    stacked: bool
    x_categories: NotRequired[list[str]]  # xs are indexes into these
    empty: NotRequired[str]  # what an empty chart says


def _chart(kind: str, title: str, xs: list[float], series: list[Series], **kw: Any) -> Chart:
    chart = Chart(
        kind=kind,
        title=title,
        xs=xs,
        series=series,
        x_label=kw.pop("x_label", ""),
        y_label=kw.pop("y_label", ""),
        x_time=kw.pop("x_time", False),
        x_log=kw.pop("x_log", False),
        y_unit=kw.pop("y_unit", "value"),
        stacked=kw.pop("stacked", False),
    )
    chart.update(kw)  # type: ignore[typeddict-item]
    return chart


_DAY = 86_400


def _day(group: str | None) -> float:
    """A stats day (``YYYY-MM-DD``) as epoch seconds at midnight UTC."""
    day = dt.date.fromisoformat(group or "1970-01-01")
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def _days(stats: Sequence[Mapping[str, Any]]) -> list[float]:
    return [_day(g["group"]) for g in stats]


def daily(stats: Sequence[Mapping[str, Any]], first: float, last: float) -> list[dict[str, Any]]:
    """``job_stats(by="day")`` rows with a row for every day from ``first`` to ``last`` (epoch
    seconds, any time of the day): a day without jobs counts zero, its rates unknown, so the
    charts' days are evenly spaced.

    >>> rows = daily([{"group": "1970-01-02", "jobs": 3, "success_rate": 1.0}], 0, 2 * 86_400 + 5)
    >>> [(r["group"], r["jobs"], r["success_rate"]) for r in rows]
    [('1970-01-01', 0, None), ('1970-01-02', 3, 1.0), ('1970-01-03', 0, None)]
    """
    known = {g["group"]: g for g in stats}
    empty = {"p50": None, "p90": None, "p99": None, "n": 0}
    rows = []
    for day in range(int(first // _DAY), int(last // _DAY) + 1):
        group = dt.datetime.fromtimestamp(day * _DAY, dt.UTC).date().isoformat()
        rows.append(
            dict(known[group])
            if group in known
            else {
                "group": group,
                "jobs": 0,
                "completed": 0,
                "failed": 0,
                "stopped": 0,
                "in_flight": 0,
                "success_rate": None,
                "failures": {},
                "retries": {},
                "wait_to_launch": empty,
                "run_time": empty,
            }
        )
    return rows


def outcome_chart(stats: Sequence[Mapping[str, Any]]) -> Chart:
    """Jobs submitted per day, stacked by how they ended (or that they have not yet)."""
    series = [
        Series(label=label, color=COLORS[key], values=[g[key] for g in stats])
        for key, label in (
            ("completed", "Completed"),
            ("failed", "Failed"),
            ("stopped", "Stopped"),
            ("in_flight", "In flight"),
        )
    ]
    return _chart(
        "bars",
        "Jobs per day, by outcome",
        _days(stats) if any(g["jobs"] for g in stats) else [],
        series,
        x_time=True,
        y_label="jobs",
        y_unit="count",
        stacked=True,
        empty="no jobs in this period",
    )


def success_rate_chart(stats: Sequence[Mapping[str, Any]]) -> Chart:
    values: list[float | None] = [g["success_rate"] for g in stats]
    series = [Series(label="Success rate", color=COLORS["completed"], values=values)]
    return _chart(
        "lines",
        "Success rate (completed of ended)",
        _days(stats) if any(v is not None for v in values) else [],
        series,
        x_time=True,
        y_unit="percent",
        empty="no job has ended in this period",
    )


def retries_chart(stats: Sequence[Mapping[str, Any]]) -> Chart:
    """Launches tried again per day, stacked by the kind of failure that caused them."""
    kinds = sorted({k for g in stats for k in g["retries"]})
    series = [
        Series(
            label=kind,
            color=KIND_COLORS.get(kind, PALETTE[i % len(PALETTE)]),
            values=[g["retries"].get(kind, 0) for g in stats],
        )
        for i, kind in enumerate(kinds)
    ]
    xs = _days(stats) if series else []
    return _chart(
        "bars",
        "Retries by failure kind",
        xs,
        series,
        x_time=True,
        y_label="retries",
        y_unit="count",
        stacked=True,
        empty="no retries in this period",
    )


def duration_charts(stats: Sequence[Mapping[str, Any]]) -> list[Chart]:
    """Percentiles of the wait for capacity (submitted to first launched) and of run time.

    >>> stats = [{"group": "2026-01-02", "wait_to_launch": {"p50": 1.0, "p90": 2.0, "p99": 3.0},
    ...           "run_time": {"p50": None, "p90": None, "p99": None}}]
    >>> wait, run = duration_charts(stats)
    >>> [s["values"] for s in wait["series"]], run["xs"]
    ([[1.0], [2.0], [3.0]], [])
    """
    charts = []
    for key, title in (("wait_to_launch", "Wait for capacity"), ("run_time", "Run time")):
        series = [
            Series(label=p, color=color, values=[g[key][p] for g in stats])
            for p, color in (("p50", "#2f5bd3"), ("p90", "#e8590c"), ("p99", "#c92a2a"))
        ]
        known = any(v is not None for s in series for v in s["values"])
        charts.append(
            _chart(
                "lines",
                f"{title} (p50, p90, p99)",
                _days(stats) if known else [],
                series,
                x_time=True,
                y_unit="seconds",
                empty="no measure in this period",
            )
        )
    return charts


#: Columns of a curve point that are its position, not a measure.
_POSITION = ("rows", "epoch", "seconds", "batch", "step")


def curve_charts(points: Sequence[Mapping[str, Any]]) -> list[Chart]:
    """A training job's curve against rows read (else seconds): the progressive losses in one
    chart, the throughput in another, other measures in a third, since their scales differ.

    >>> points = [{"rows": 100, "epoch": 1, "seconds": 0.5, "loss": 0.7, "rows_per_second": 200},
    ...           {"rows": 200, "epoch": 1, "seconds": 0.9, "loss": 0.5, "rows_per_second": 250}]
    >>> [(c["title"], c["xs"], [s["label"] for s in c["series"]]) for c in curve_charts(points)]
    [('Progressive loss', [100, 200], ['loss']), ('Throughput', [100, 200], ['rows_per_second'])]
    """
    if not points:
        return []
    x_key = next((k for k in _POSITION if all(_number(p.get(k)) for p in points)), None)
    if x_key is None:
        return []
    xs: list[float] = [p[x_key] for p in points]
    names: list[str] = []
    for point in points:
        names += [
            k for k, v in point.items() if k not in _POSITION and _number(v) and k not in names
        ]
    losses = [n for n in names if "loss" in n.lower()]
    speeds = [n for n in names if "per_second" in n]
    others = [n for n in names if n not in losses and n not in speeds]
    charts = []
    for title, group, unit in (
        ("Progressive loss", losses, "value"),
        ("Throughput", speeds, "count"),
        ("Metrics", others, "value"),
    ):
        if not group:
            continue
        series = [
            Series(
                label=name,
                color=PALETTE[i % len(PALETTE)],
                values=[float(p[name]) if _number(p.get(name)) else None for p in points],
            )
            for i, name in enumerate(group)
        ]
        charts.append(
            _chart("lines", title, list(xs), series, x_label=x_key.replace("_", " "), y_unit=unit)
        )
    return charts


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def hyperparameter_charts(
    points: Sequence[tuple[Mapping[str, Any], float | None]], objective: str
) -> list[Chart]:
    """One scatter of the objective against each hyperparameter that varies across a sweep.
    ``points``: each job's hyperparameters and its objective (None: no value yet). Numbers
    spanning a decade or more get a log axis; other values are categories.

    >>> pts = [({"lr": 0.001, "loss": "hinge"}, 0.7), ({"lr": 0.1, "loss": "logistic"}, 0.8),
    ...        ({"lr": 0.01, "loss": "hinge"}, None)]
    >>> lr, loss = hyperparameter_charts(pts, "auc")
    >>> lr["xs"], lr["series"][0]["values"], lr["x_log"]
    ([0.001, 0.1], [0.7, 0.8], True)
    >>> loss["xs"], loss["x_categories"], loss["series"][0]["values"]
    ([0, 1], ['hinge', 'logistic'], [0.7, 0.8])
    """
    scored = [(hp, y) for hp, y in points if y is not None]
    names: list[str] = []
    for hp, _ in points:
        names += [k for k in hp if k not in names]
    charts = []
    for i, name in enumerate(names):
        values = [hp.get(name) for hp, _ in points]
        if len({repr(v) for v in values}) < 2:
            continue  # the same in every job: nothing to compare
        pairs = [(hp.get(name), y) for hp, y in scored if hp.get(name) is not None]
        numeric = all(_number(x) for x, _ in pairs)
        color = PALETTE[i % len(PALETTE)]
        extra: dict[str, Any] = {}
        if numeric:
            pairs.sort(key=lambda p: float(p[0]))  # type: ignore[arg-type]  # numbers
            xs: list[float] = [float(x) for x, _ in pairs]  # type: ignore[arg-type]
            positive = [x for x in xs if x > 0]
            extra["x_log"] = len(positive) == len(xs) > 1 and max(xs) / min(xs) >= 10
        else:
            categories = sorted({str(x) for x, _ in pairs})
            pairs.sort(key=lambda p: categories.index(str(p[0])))
            xs = [categories.index(str(x)) for x, _ in pairs]
            extra["x_categories"] = categories
        series = [Series(label=objective, color=color, values=[y for _, y in pairs])]
        charts.append(
            _chart(
                "scatter",
                f"{objective} against {name}",
                xs,
                series,
                x_label=name,
                empty="no job of the sweep has this objective yet",
                **extra,
            )
        )
    return charts
