"""The calendar of series against GluonTS's own numbers.

The pinned values were printed by GluonTS 0.17.0 on pandas 2.3.3
(``get_lags_for_frequency``, ``get_seasonality``, and ``time_features_from_frequency_str``
applied to ``pd.period_range(pd.Period(start, freq) + first, periods=n, freq=freq)``). A wider
comparison, run once outside the suite (pandas is no dependency), agreed bit for bit in
float32: 15 frequencies x 40 random starts from 1906 to 2096 x 400 steps, and the lags and
seasonality of 217 frequencies (1 to 120 minutes, 1 to 48 hours, 1 to 14 days, 1 to 8 weeks,
1 to 24 months, Q, Y, 2Y).
"""

from __future__ import annotations

import numpy as np
import pytest

from streamfit.core.calendar import (
    UNITS,
    Frequency,
    lags_for_frequency,
    num_time_features,
    parse_frequency,
    parse_start,
    period_index,
    period_indices,
    seasonality,
    time_features,
)
from streamfit.errors import ConfigError

GLUONTS_LAGS = {
    "min": [1, 2, 3, 4, 5, 6, 7, 58, 59, 60, 61, 62, 118, 119, 120, 121, 122, 178, 179, 180,
            181, 182],
    "5min": [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 22, 23, 24, 25, 26, 34, 35, 36, 37, 38,
             287, 288, 289, 575, 576, 577, 863, 864, 865, 1151, 1152, 1153],
    "15min": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 95, 96, 97, 191, 192, 193, 287,
              288, 289, 383, 384, 385, 479, 480, 481, 575, 576, 577, 671, 672, 673],
    "H": [1, 2, 3, 4, 5, 6, 7, 23, 24, 25, 47, 48, 49, 71, 72, 73, 95, 96, 97, 119, 120, 121,
          143, 144, 145, 167, 168, 169, 335, 336, 337, 503, 504, 505, 671, 672, 673, 719, 720,
          721],
    "2H": [1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 23, 24, 25, 35, 36, 37, 47, 48, 49, 59, 60, 61, 71,
           72, 73, 83, 84, 85, 167, 168, 169, 251, 252, 253, 335, 336, 337, 359, 360, 361, 672,
           1008],
    "12H": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 27, 28, 29, 41, 42, 43, 55, 56,
            57, 59, 60, 61, 112, 168, 727, 728, 729],
    "D": [1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 15, 20, 21, 22, 27, 28, 29, 30, 31, 56, 84, 363, 364,
          365, 727, 728, 729, 1091, 1092, 1093],
    "2D": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 28, 42, 181, 182, 183, 363, 364,
           365, 545, 546, 547],
    "W": [1, 2, 3, 4, 5, 6, 7, 8, 12, 51, 52, 53, 103, 104, 105, 155, 156, 157],
    "2W": [1, 2, 3, 4, 5, 6, 7, 25, 26, 27, 51, 52, 53, 77, 78, 79],
    "M": [1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 23, 24, 25, 35, 36, 37],
    "3M": [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13],
    "6M": [1, 2, 3, 4, 5, 6, 7],
    "Q": [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13],
    "Y": [1, 2, 3, 4, 5, 6, 7],
}  # fmt: skip

GLUONTS_SEASONALITY = {
    "min": 1440, "5min": 288, "7min": 1, "H": 24, "2H": 12, "5H": 1, "D": 1, "2D": 1, "W": 1,
    "M": 12, "3M": 4, "5M": 1, "Q": 4, "Y": 1,
}  # fmt: skip

#: (freq, start, first step, GluonTS's calendar features of the steps from it)
GLUONTS_FEATURES = [
    ("5min", "2024-02-29 23:50:00", -1, [[0.262712, 0.5, 0.0, 0.433333, -0.338356],
                                         [0.347458, 0.5, 0.0, 0.433333, -0.338356],
                                         [0.432203, 0.5, 0.0, 0.433333, -0.338356],
                                         [-0.5, -0.5, 0.166667, -0.5, -0.335616]]),
    ("H", "2024-12-31 22:00:00", 0, [[0.456522, -0.333333, 0.5, 0.5],
                                     [0.5, -0.333333, 0.5, 0.5],
                                     [-0.5, -0.166667, -0.5, -0.5]]),
    ("D", "2020-12-30", 0, [[-0.166667, 0.466667, 0.49726], [0.0, 0.5, 0.5],
                            [0.166667, -0.5, -0.5]]),
    ("W", "2020-12-30", -1, [[0.366667, 0.480769], [-0.433333, 0.5], [-0.2, -0.5]]),
    ("2W", "2024-01-03", 0, [[-0.3, -0.5], [0.166667, -0.461538], [-0.4, -0.423077]]),
    ("M", "2023-11-15", 0, [[0.409091], [0.5], [-0.5]]),
    ("Q", "2024-05-01", 0, [[-0.045455], [0.227273], [0.5]]),
    ("Y", "2024-05-01", 0, [[], []]),
]  # fmt: skip


@pytest.mark.parametrize("freq", sorted(GLUONTS_LAGS))
def test_lags_are_gluonts(freq: str) -> None:
    assert lags_for_frequency(freq) == GLUONTS_LAGS[freq]


@pytest.mark.parametrize("freq", sorted(GLUONTS_SEASONALITY))
def test_seasonality_is_gluonts(freq: str) -> None:
    assert seasonality(freq) == GLUONTS_SEASONALITY[freq]


@pytest.mark.parametrize(("freq", "start", "first", "want"), GLUONTS_FEATURES)
def test_time_features_are_gluonts_and_age_last(
    freq: str, start: str, first: int, want: list[list[float]]
) -> None:
    got = time_features(freq, parse_start(start), first, len(want))
    assert got.dtype == np.float32 and got.shape == (len(want), num_time_features(freq))
    np.testing.assert_allclose(got[:, :-1], np.array(want).reshape(len(want), -1), atol=1e-6)
    steps = np.maximum(np.arange(first, first + len(want)), 0)
    np.testing.assert_array_equal(got[:, -1], np.log10(2 + steps.astype(np.float32)))


def test_time_features_of_a_window_are_a_slice_of_the_series() -> None:
    start = parse_start("2023-03-26 01:00:00")
    whole = time_features("3H", start, -5, 60)
    np.testing.assert_array_equal(time_features("3H", start, 7, 10), whole[12:22])


def test_age_is_gluonts_float32_log() -> None:
    age = time_features("D", parse_start("2024-01-01"), 0, 1000)[:, -1]
    np.testing.assert_array_equal(
        age, np.log10(np.float32(2.0) + np.arange(1000, dtype=np.float32))
    )


def test_frequencies() -> None:
    assert parse_frequency("min") == Frequency("min", 1)
    assert parse_frequency("15min") == Frequency("min", 15)
    assert parse_frequency("2H") == Frequency("H", 2)
    assert parse_frequency("3M") == Frequency("M", 3)
    assert parse_frequency("1D") == Frequency("D", 1)
    assert str(parse_frequency("12H")) == "12H" and str(parse_frequency("1W")) == "W"
    assert [num_time_features(u) for u in UNITS] == [6, 5, 4, 3, 2, 2, 1]


def test_a_multiple_beyond_reason() -> None:
    assert parse_frequency("1000000min").n == 10**6
    with pytest.raises(ConfigError, match="a multiple above 1,000,000"):
        parse_frequency("1000001min")


@pytest.mark.parametrize("bad", ["", "S", "5s", "h", "0H", "-2H", "2.5H", "H2", "ME", " D", "2Q"])
def test_unknown_frequency_lists_the_allowed(bad: str) -> None:
    with pytest.raises(ConfigError, match="time_freq") as info:
        parse_frequency(bad)
    assert "min, H, D, W, M, Q, Y" in str(info.value) or "6M" in str(info.value)


def test_starts() -> None:
    assert parse_start("2024-01-01 00:00:00") == np.datetime64("2024-01-01T00:00:00")
    assert parse_start("1999-12-31 23:59:59") == np.datetime64("1999-12-31T23:59:59")
    assert parse_start("2024-02-29") == np.datetime64("2024-02-29T00:00:00")


@pytest.mark.parametrize(
    "bad",
    ["2024-13-01", "2023-02-29", "2024-01-01 24:00:00", "2024-01-01T00:00:00", "2024-1-1",
     "01/02/2024", "2024-01-01 00:00", "", " 2024-01-01", "2024-01-01 00:00:00Z", "２０２４-01-01"],
)  # fmt: skip
def test_bad_starts(bad: str) -> None:
    with pytest.raises(ValueError, match=r"2024|2023|is not"):
        parse_start(bad)


def test_a_start_that_is_no_string() -> None:
    with pytest.raises(ValueError, match="not a string but int"):
        parse_start(20240101)  # type: ignore[arg-type]


def test_period_index() -> None:
    assert period_index("min", parse_start("1970-01-01 01:01:00")) == 61
    assert period_index("5min", parse_start("1970-01-01 01:01:00")) == 61  # the unit's
    assert period_index("H", parse_start("1969-12-31 23:59:59")) == -1
    assert period_index("D", parse_start("2024-01-01")) == 19723
    # Weeks run Monday to Sunday: 1969-12-29 to 1970-01-04 is week 0.
    assert period_index("W", parse_start("1970-01-04 23:00:00")) == 0
    assert period_index("W", parse_start("1970-01-05")) == 1
    assert period_index("W", parse_start("1969-12-28")) == -1
    assert period_index("M", parse_start("2024-03-31")) == 54 * 12 + 2
    assert period_index("Q", parse_start("2024-03-31")) == 54 * 4
    assert period_index("Q", parse_start("2024-04-01")) == 54 * 4 + 1
    assert period_index("Y", parse_start("1969-07-01")) == -1
    when = np.array(["2024-01-01T05", "2024-01-02T07"], dtype="datetime64[s]")
    assert (period_indices("2H", when) - period_indices("2H", when[:1])).tolist() == [0, 26]
