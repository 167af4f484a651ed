"""The calendar of regular time series, without pandas: SageMaker's ``time_freq`` values, the
period each step of a series falls in, and what GluonTS's DeepAR derives from the frequency
(time features, lags, seasonality), computed with GluonTS's formulas.

A step is a period of the frequency's unit (a minute, an hour, a day, a week ending on Sunday,
a month, a quarter, a year). Step ``k`` of a series with frequency ``nU`` lies ``k * n``
periods of ``U`` after the period holding its ``start``, as in a pandas ``PeriodIndex``.

>>> freq = parse_frequency("2H")
>>> str(freq), num_time_features(freq), seasonality(freq)
('2H', 5, 12)
>>> time_features(freq, parse_start("2024-01-01 05:30:00"), 0, 2).astype(float).round(3).tolist()
[[-0.283, -0.5, -0.5, -0.5, 0.301], [-0.196, -0.5, -0.5, -0.5, 0.477]]
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass

import numpy as np

from streamfit.errors import ConfigError

__all__ = [
    "UNITS",
    "Frequency",
    "age_feature",
    "calendar_features",
    "lags_for_frequency",
    "num_time_features",
    "parse_frequency",
    "parse_start",
    "period_index",
    "period_indices",
    "seasonality",
    "time_features",
]

#: The units of ``time_freq``: minutes, hours, days, weeks, months, quarters, years.
UNITS = ("min", "H", "D", "W", "M", "Q", "Y")
_FREQ = re.compile(r"([0-9]*)(min|H|D|W|M|Q|Y)")
_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?")
_MAX_MULTIPLE = 1_000_000  # steps of a series times it stay far within int64
_SECONDS = {"min": 60, "H": 3600, "D": 86400}
#: The calendar features of each unit, in GluonTS's order (``time_features_from_frequency_str``).
_FEATURES = {
    "min": ("minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "H": ("hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "D": ("day_of_week", "day_of_month", "day_of_year"),
    "W": ("day_of_month", "week_of_year"),
    "M": ("month_of_year",),
    "Q": ("month_of_year",),
    "Y": (),
}
#: GluonTS's ``DEFAULT_SEASONALITIES`` (a unit not listed has seasonality 1).
_SEASONALITY = {"min": 1440, "H": 24, "D": 1, "W": 1, "M": 12, "Q": 4}


@dataclass(frozen=True)
class Frequency:
    """``n`` periods of ``unit`` (one of :data:`UNITS`) per step."""

    unit: str
    n: int = 1

    def __str__(self) -> str:
        return self.unit if self.n == 1 else f"{self.n}{self.unit}"


def parse_frequency(time_freq: str | Frequency) -> Frequency:
    """A ``time_freq`` value: a unit of :data:`UNITS`, optionally after a multiple.

    >>> parse_frequency("5min"), parse_frequency("M")
    (Frequency(unit='min', n=5), Frequency(unit='M', n=1))
    >>> parse_frequency("5s")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamfit.errors.ConfigError: time_freq '5s' is not one of min, H, D, W, M, Q, Y, ...
    """
    if isinstance(time_freq, Frequency):
        return time_freq
    match = _FREQ.fullmatch(time_freq) if isinstance(time_freq, str) else None
    if match is None or match.group(1).startswith("0"):
        raise ConfigError(
            f"time_freq {time_freq!r} is not one of {', '.join(UNITS)}, optionally after a "
            "multiple ('5min', '2H', '3M')"
        )
    n = int(match.group(1) or 1)
    if n > _MAX_MULTIPLE:
        raise ConfigError(f"time_freq {time_freq!r}: a multiple above {_MAX_MULTIPLE:,}")
    if match.group(2) == "Q" and n > 1:  # GluonTS has no lags for them either
        raise ConfigError(f"time_freq {time_freq!r}: for several quarters write {3 * n}M")
    return Frequency(match.group(2), n)


@functools.lru_cache(maxsize=4096)  # series of a data set mostly share a few starts
def _parse_start(text: str) -> np.datetime64:
    if not _START.fullmatch(text):
        raise ValueError(f"{text!r} is not 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD'")
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is no date ({exc})") from None
    return np.datetime64(when, "s")


def parse_start(text: str) -> np.datetime64:
    """A series' ``start`` (``"YYYY-MM-DD HH:MM:SS"`` or ``"YYYY-MM-DD"``), to the second.

    >>> parse_start("2024-02-29 13:05:00"), parse_start("2024-03-01")
    (np.datetime64('2024-02-29T13:05:00'), np.datetime64('2024-03-01T00:00:00'))
    >>> parse_start("2023-02-29")
    Traceback (most recent call last):
    ...
    ValueError: '2023-02-29' is no date (day is out of range for month)
    """
    if not isinstance(text, str):
        raise ValueError(f"not a string but {type(text).__name__}")
    return _parse_start(text)


def period_indices(freq: str | Frequency, when: np.ndarray) -> np.ndarray:
    """The periods of ``freq``'s unit holding the times ``when`` (datetime64), counted from
    the one holding 1970-01-01 (weeks run Monday to Sunday). Periods of a series'
    steps are ``n`` apart."""
    unit = parse_frequency(freq).unit
    if unit in _SECONDS:
        seconds = np.asarray(when, "datetime64[s]").astype(np.int64)
        return seconds // _SECONDS[unit]
    if unit == "W":  # 1969-12-29, the Monday before the epoch, starts week 0
        days = np.asarray(when, "datetime64[D]").astype(np.int64)
        return (days + 3) // 7
    months = np.asarray(when, "datetime64[M]").astype(np.int64)
    if unit == "M":
        return months
    return months // 3 if unit == "Q" else months // 12


def period_index(freq: str | Frequency, when: np.datetime64) -> int:
    """The period of ``freq``'s unit holding ``when`` (see :func:`period_indices`).

    >>> period_index("H", parse_start("1970-01-02 03:00:00"))
    27
    >>> period_index("W", parse_start("1970-01-05")), period_index("M", parse_start("1969-12-31"))
    (1, -1)
    """
    return int(period_indices(freq, np.asarray(when)))


def num_time_features(freq: str | Frequency) -> int:
    """Columns of :func:`time_features`: the unit's calendar features and the age.

    >>> [num_time_features(u) for u in UNITS]
    [6, 5, 4, 3, 2, 2, 1]
    """
    return len(_FEATURES[parse_frequency(freq).unit]) + 1


def time_features(freq: str | Frequency, start: np.datetime64, first: int, n: int) -> np.ndarray:
    """Features of steps ``first .. first + n - 1`` of a series starting at ``start``:
    ``(n, num_time_features(freq))`` float32.

    The calendar columns are GluonTS's ``time_features_from_frequency_str(freq)`` of the
    steps' periods (each scaled to [-0.5, 0.5]; a week's and a quarter's are those of its
    last day and month, as pandas gives them); the last is DeepAR's age,
    ``log10(2 + step)``, with steps before the start (``first < 0``) as step 0.

    >>> time_features("W", parse_start("2020-12-30"), -1, 3).astype(float).round(4).tolist()
    [[0.3667, 0.4808, 0.301], [-0.4333, 0.5, 0.301], [-0.2, -0.5, 0.4771]]
    """
    f = parse_frequency(freq)
    steps = np.arange(first, first + n, dtype=np.int64)
    out = np.empty((n, num_time_features(f)), dtype=np.float32)
    out[:, :-1] = calendar_features(f, period_index(f, start) + steps * f.n)
    out[:, -1] = age_feature(steps)
    return out


def age_feature(steps: np.ndarray) -> np.ndarray:
    """GluonTS DeepAR's age of steps since a series' start, in float32 as GluonTS computes
    it (``AddAgeFeature(log_scale=True)``); a step before the start has age 0.

    >>> age_feature(np.array([-3, 0, 8])).tolist()
    [0.3010300099849701, 0.3010300099849701, 1.0]
    """
    age: np.ndarray = np.log10(np.float32(2) + np.maximum(steps, 0).astype(np.float32))
    return age


def calendar_features(freq: str | Frequency, periods: np.ndarray) -> np.ndarray:
    """GluonTS's calendar features of the periods (:func:`period_indices`) of ``freq``'s
    unit: ``(len(periods), num_time_features(freq) - 1)`` float64."""
    unit = parse_frequency(freq).unit
    p = np.asarray(periods, dtype=np.int64)
    parts: dict[str, np.ndarray] = {}
    if unit in ("M", "Q"):
        month = p % 12 if unit == "M" else (p % 4) * 3 + 2  # a quarter's is its last month
        parts["month_of_year"] = month / 11.0 - 0.5
    elif unit != "Y":
        if unit == "min":
            parts["minute_of_hour"] = (p % 60) / 59.0 - 0.5
            hours = p // 60
        elif unit == "H":
            hours = p
        if unit in ("min", "H"):
            parts["hour_of_day"] = (hours % 24) / 23.0 - 0.5
            days = hours // 24
        else:
            days = p if unit == "D" else 7 * p + 3  # a week's is its Sunday's
        parts.update(_day_features(days))
    columns = [parts[name] for name in _FEATURES[unit]]
    return np.stack(columns, axis=1) if columns else np.zeros((len(p), 0))


def _day_features(days: np.ndarray) -> dict[str, np.ndarray]:
    """Day of week, month and year, and ISO week, of days since 1970-01-01 (a Thursday)."""
    dates = days.astype("datetime64[D]")
    month_start = dates.astype("datetime64[M]").astype("datetime64[D]")
    year_start = dates.astype("datetime64[Y]").astype("datetime64[D]")
    weekday = (days + 3) % 7  # Monday 0
    thursday = (days - weekday + 3).astype("datetime64[D]")  # its ISO week's, in its ISO year
    iso_year_start = thursday.astype("datetime64[Y]").astype("datetime64[D]")
    week = (thursday - iso_year_start).astype(np.int64) // 7 + 1
    return {
        "day_of_week": weekday / 6.0 - 0.5,
        "day_of_month": (dates - month_start).astype(np.int64) / 30.0 - 0.5,
        "day_of_year": (dates - year_start).astype(np.int64) / 365.0 - 0.5,
        "week_of_year": (week - 1) / 52.0 - 0.5,
    }


def lags_for_frequency(freq: str | Frequency) -> list[int]:
    """GluonTS's ``get_lags_for_frequency(freq)`` (its default arguments): 1 to 7, then the
    same season (within a step or two) in the previous cycles, up to 1200.

    >>> lags_for_frequency("M")
    [1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 23, 24, 25, 35, 36, 37]
    >>> lags_for_frequency("Q"), lags_for_frequency("Y")
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13], [1, 2, 3, 4, 5, 6, 7])
    """
    f = parse_frequency(freq)
    n = f.n
    # GluonTS's float arithmetic, step for step (a multiple below one, as ``n / 7.0`` for
    # days in weeks, floor-divides the cycle), so that rounding gives its lags.
    if f.unit == "Y":
        groups: list[list[float]] = []
    elif f.unit == "Q":
        groups = _month_lags(n * 3.0)
    elif f.unit == "M":
        groups = _month_lags(n)
    elif f.unit == "W":
        groups = _week_lags(n)
    elif f.unit == "D":
        groups = _day_lags(n) + _week_lags(n / 7.0)
    elif f.unit == "H":
        groups = _hour_lags(n) + _day_lags(n / 24) + _week_lags(n / (24 * 7))
    else:
        groups = (
            _cycle_lags(n, 60, 3, 2)
            + _hour_lags(n / 60)
            + _day_lags(n / (60 * 24))
            + _week_lags(n / (60 * 24 * 7))
        )
    seasonal = {int(lag) for group in groups for lag in group if 7 < lag <= 1200}
    return [1, 2, 3, 4, 5, 6, 7, *sorted(seasonal)]


def _around(middle: float, delta: int) -> list[float]:
    return [middle + d for d in range(-delta, delta + 1)]


def _cycle_lags(multiple: float, period: int, cycles: int, delta: int) -> list[list[float]]:
    return [_around(k * period // multiple, delta) for k in range(1, cycles + 1)]


def _hour_lags(multiple: float) -> list[list[float]]:
    return _cycle_lags(multiple, 24, 7, 1)


def _day_lags(multiple: float) -> list[list[float]]:
    return [*_cycle_lags(multiple, 7, 4, 1), _around(30 // multiple, 1)]


def _week_lags(multiple: float) -> list[list[float]]:
    return [*_cycle_lags(multiple, 52, 3, 1), [4 // multiple, 8 // multiple, 12 // multiple]]


def _month_lags(multiple: float) -> list[list[float]]:
    return _cycle_lags(multiple, 12, 3, 1)


def seasonality(freq: str | Frequency) -> int:
    """GluonTS's ``get_seasonality(freq)``, the season of MASE's naive forecast: the unit's
    (1440 minutes, 24 hours, 12 months, 4 quarters; 1 for days, weeks and years) over the
    multiple, or 1 where the multiple does not divide it.

    >>> seasonality("5min"), seasonality("7H"), seasonality("3M"), seasonality("D")
    (288, 1, 4, 1)
    """
    f = parse_frequency(freq)
    season, remainder = divmod(_SEASONALITY.get(f.unit, 1), f.n)
    return 1 if remainder else season
