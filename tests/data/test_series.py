"""Series records read into windows: every mode's windows on hand-made series, missing
values, gzip, Parquet as JSON Lines, positions across files and resume, bad records (named by
file, line and field, or counted and skipped), and random records."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamfit.core.calendar import num_time_features, parse_start, time_features
from streamfit.core.windows import SeriesReading, WindowLayout, Windows, WindowsMode
from streamfit.data.base import SourceOptions
from streamfit.data.batcher import Batcher
from streamfit.data.source import PipeSource, open_source
from streamfit.errors import ConfigError, DataError
from tests.data.conftest import Read, expect_data_error, read, write_lines

P, C, H = 2, 3, 2
LAYOUT = WindowLayout(H, C, P, time_features=num_time_features("D"), cat=1, dynamic=1)
START = "2024-02-27"


def reading(mode: WindowsMode = "train", **kw: Any) -> SeriesReading:
    kw.setdefault("layout", LAYOUT)
    kw.setdefault("cardinality", (5,))
    return SeriesReading("D", mode=mode, **kw)


def record(target: list[Any], start: str = START, cat: int = 3, extra_steps: int = 0) -> dict:
    n = len(target) + extra_steps
    return {
        "start": start,
        "target": target,
        "cat": [cat],
        "dynamic_feat": [[100.0 + i for i in range(n)]],
    }


def lines(records: list[Any]) -> list[str]:
    return [r if isinstance(r, str) else json.dumps(r) for r in records]


def windows(got: Read, layout: WindowLayout = LAYOUT) -> Windows:
    return layout.unpack(torch.tensor(got.x))


def read_series(path: Path | str, mode: WindowsMode = "train", skip: int = 0, **kw: Any) -> Read:
    options = {k: kw.pop(k) for k in ("on_bad_rows", "block_bytes") if k in kw}
    return read(path, skip=skip, series=reading(mode, **kw), **options)


# -- windows of each mode ------------------------------------------------------------------


def test_train_windows_every_stride_most_recent_first(tmp_path: Path) -> None:
    target = [1.0, 2.0, None, 4.0, 5.0, 6.0, 7.0, 8.0]  # L = 8
    path = write_lines(tmp_path / "s.jsonl", lines([record(target)]))
    got = read_series(path, stride=2)
    # s = L - P = 6, then 4, 2 (s = 0 would predict from nothing)
    assert got.positions.tolist() == [0, 1, 2] and got.end == 3
    w = windows(got)
    # The window predicting steps 4 and 5 holds steps -1 .. 5: one step before the start.
    assert w.target[1].tolist() == [0, 1, 2, 0, 4, 5, 6]
    assert w.observed[1].tolist() == [0, 1, 1, 0, 1, 1, 1]
    assert w.future_target[1].tolist() == [5, 6]
    assert w.target[0].tolist() == [2, 0, 4, 5, 6, 7, 8]
    assert w.target[2].tolist() == [0, 0, 0, 1, 2, 0, 4]
    assert w.observed[2].tolist() == [0, 0, 0, 1, 1, 0, 1]
    # Time features of steps s - C .. s + P - 1 (calendar from the start, age from step 0).
    start = parse_start(START)
    np.testing.assert_array_equal(w.time[1].numpy(), time_features("D", start, 1, C + P))
    np.testing.assert_array_equal(w.time[2].numpy(), time_features("D", start, -1, C + P))
    assert w.time[2, 0, -1].item() == pytest.approx(math.log10(2))  # step -1 ages as step 0
    assert w.dynamic[1, :, 0].tolist() == [101, 102, 103, 104, 105]
    assert w.dynamic[2, :, 0].tolist() == [0, 100, 101, 102, 103]  # before the start: 0
    assert w.cat.tolist() == [[3], [3], [3]]
    # Training windows carry the series' mean absolute observed value.
    assert w.extra.tolist() == pytest.approx([33 / 7] * 3)


def test_train_windows_stride_one_reach_step_one(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.jsonl", lines([record([float(v) for v in range(1, 7)])]))
    w = windows(read_series(path))
    starts = [4, 3, 2, 1]
    assert w.n == len(starts)
    for row, s in enumerate(starts):
        steps = np.arange(s - C - H, s + P)
        want = np.where((steps >= 0) & (steps < 6), steps + 1, 0)
        assert w.target[row].tolist() == want.tolist()


def test_test_window_holds_out_the_last_steps_and_carries_the_seasonal_error(
    tmp_path: Path,
) -> None:
    target = [1.0, 3.0, 2.0, 6.0, None, 7.0, 9.0, 20.0]
    path = write_lines(tmp_path / "s.jsonl", lines([record(target)]))
    w = windows(read_series(path, "test", seasonality=2))
    assert w.n == 1
    assert w.past_target[0].tolist() == [3, 2, 6, 0, 7]
    assert w.future_target[0].tolist() == [9, 20]
    np.testing.assert_array_equal(
        w.time[0].numpy(), time_features("D", parse_start(START), 6 - C, C + P)
    )
    # The seasonal error of the 6 steps before the held-out ones at lag 2, a pair with a
    # missing value left out: |2 - 1|, |6 - 3|, |7 - 6|.
    assert w.extra[0].item() == pytest.approx((1 + 3 + 1) / 3)


def test_seasonal_error_falls_back_to_lag_one_and_to_zero(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.jsonl", lines([record([1.0, 4.0, 6.0, 0.0, 0.0])]))
    w = windows(read_series(path, "test", seasonality=12))  # longer than the 3 past steps
    assert w.extra[0].item() == pytest.approx((3 + 2) / 2)
    path = write_lines(tmp_path / "t.jsonl", lines([record([5.0, 1.0, 2.0])]))
    assert windows(read_series(path, "test", seasonality=1)).extra.tolist() == [0.0]


def gluonts_seasonal_error(past: np.ndarray, season: int) -> float:
    """GluonTS's ``calculate_seasonal_error`` of a past with missing values masked (its
    evaluator's ``ignore_invalid_values``); 0 where it has no value."""
    lag = season if season < len(past) else 1
    masked = np.ma.masked_invalid(past)
    error = np.ma.mean(np.abs(masked[:-lag] - masked[lag:]))
    return 0.0 if error is np.ma.masked else float(error)


@pytest.mark.parametrize("season", [1, 3, 7])
def test_each_series_extra_in_a_chunk_of_many(tmp_path: Path, season: int) -> None:
    recs = [r for r in series_records(60, seed=4) if len(r["target"]) > P]
    path = write_lines(tmp_path / "s.jsonl", lines(recs))
    targets = [np.array(r["target"], dtype=float) for r in recs]  # None is NaN
    test = windows(read_series(path, "test", seasonality=season, block_bytes=3000))
    want = [gluonts_seasonal_error(t[: len(t) - P], season) for t in targets]
    np.testing.assert_allclose(test.extra.numpy(), want, rtol=1e-6)
    train = windows(read_series(path, block_bytes=3000))
    means = [np.nanmean(np.abs(t)) for t in targets for _ in range(len(t) - P)]
    np.testing.assert_allclose(train.extra.numpy(), means, rtol=1e-6)


def test_forecast_window_is_the_steps_after_the_end(tmp_path: Path) -> None:
    target = [1.0, 2.0, 3.0, 4.0]
    path = write_lines(tmp_path / "s.jsonl", lines([record(target, extra_steps=P)]))
    got = read_series(path, "forecast")
    w = windows(got)
    assert w.n == 1 and got.positions.tolist() == [0]
    assert w.target[0].tolist() == [0, 1, 2, 3, 4, 0, 0]
    assert w.observed[0].tolist() == [0, 1, 1, 1, 1, 0, 0]
    np.testing.assert_array_equal(
        w.time[0].numpy(), time_features("D", parse_start(START), 4 - C, C + P)
    )
    assert w.dynamic[0, :, 0].tolist() == [101, 102, 103, 104, 105]  # covariates of the future
    assert w.extra.tolist() == [0.0]


def test_forecast_of_a_series_shorter_than_the_context(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.jsonl", lines([record([7.0], extra_steps=P)]))
    w = windows(read_series(path, "forecast"))
    assert w.target[0].tolist() == [0, 0, 0, 0, 7, 0, 0]


def test_calendar_runs_on_from_each_series_start(tmp_path: Path) -> None:
    layout = WindowLayout(0, 2, 1, time_features=num_time_features("M"))
    recs = [
        {"start": "2023-11-15 10:00:00", "target": [1, 2, 3]},
        {"start": "2024-05-01", "target": [1, 2]},
    ]
    path = write_lines(tmp_path / "s.jsonl", lines(recs))
    got = read(path, series=SeriesReading("M", layout, "forecast"))
    w = layout.unpack(torch.tensor(got.x))
    # Month of year, (month - 1) / 11 - 0.5: Dec, Jan, Feb for the first; May, Jun, Jul
    assert w.time[0, :, 0].tolist() == pytest.approx([11 / 11 - 0.5, -0.5, 1 / 11 - 0.5])
    assert w.time[1, :, 0].tolist() == pytest.approx([4 / 11 - 0.5, 5 / 11 - 0.5, 6 / 11 - 0.5])


def test_no_cat_nor_dynamic_in_the_layout_ignores_them(tmp_path: Path) -> None:
    layout = WindowLayout(1, 2, 1, time_features=num_time_features("H"))
    recs = [{"start": "2024-01-01 00:00:00", "target": [1, 2, 3], "cat": "junk"}]
    got = read(write_lines(tmp_path / "s.jsonl", lines(recs)), series=SeriesReading("H", layout))
    assert got.x.shape == (2, layout.width)


# -- values and formats ----------------------------------------------------------------------


def test_missing_values_in_every_spelling(tmp_path: Path) -> None:
    raw = (
        '{"start": "2024-02-27", "target": [1, "NaN", NaN, null, 5, 8, 9],'
        ' "cat": [0], "dynamic_feat": [[0, 0, 0, 0, 0, 0, 0]]}'
    )
    w = windows(read_series(write_lines(tmp_path / "s.jsonl", [raw]), "test"))
    assert w.target[0].tolist() == [1, 0, 0, 0, 5, 8, 9]
    assert w.observed[0].tolist() == [1, 0, 0, 0, 1, 1, 1]
    assert w.future_target[0].tolist() == [8, 9]


def series_records(n: int = 7, seed: int = 0) -> list[dict]:
    """Series of assorted lengths (some too short to train on), missing values included."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(1, 12))
        target: list[float | None] = rng.normal(10, 3, length).round(3).tolist()
        if length > 4:
            target[1] = None
        day = 1 + int(rng.integers(0, 28))
        start = f"2023-{1 + i % 12:02d}-{day:02d}" + (" 06:00:00" if i % 2 else "")
        out.append(record(target, start=start, cat=i % 5))
    return out


def test_gzip_reads_as_plain(tmp_path: Path) -> None:
    recs = lines(series_records())
    plain = read_series(write_lines(tmp_path / "s.jsonl", recs), on_bad_rows="skip")
    path = tmp_path / "z.jsonl.gz"
    path.write_bytes(gzip.compress("".join(f"{r}\n" for r in recs).encode()))
    zipped = read_series(path, on_bad_rows="skip")
    np.testing.assert_array_equal(zipped.x, plain.x)
    np.testing.assert_array_equal(zipped.positions, plain.positions)


def write_parquet(path: Path, records: list[dict], timestamps: bool = False, **kw: Any) -> Path:
    starts: Any = [r["start"] for r in records]
    if timestamps:
        starts = pa.array([parse_start(s).astype("datetime64[ms]") for s in starts])
    table = pa.table(
        {
            "start": starts,
            "target": pa.array([r["target"] for r in records], pa.list_(pa.float64())),
            "cat": pa.array([r["cat"] for r in records], pa.list_(pa.int32())),
            "dynamic_feat": pa.array(
                [r["dynamic_feat"] for r in records], pa.list_(pa.list_(pa.float32()))
            ),
        }
    )
    pq.write_table(table, path, **kw)
    return path


@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("timestamps", [False, True])
def test_parquet_equals_json_lines(tmp_path: Path, mode: WindowsMode, timestamps: bool) -> None:
    recs = series_records(40)
    jsonl = read_series(write_lines(tmp_path / "s.jsonl", lines(recs)), mode, on_bad_rows="skip")
    path = write_parquet(tmp_path / "s.parquet", recs, timestamps, row_group_size=7)
    parquet = read_series(path, mode, on_bad_rows="skip")
    np.testing.assert_array_equal(parquet.x, jsonl.x)
    np.testing.assert_array_equal(parquet.positions, jsonl.positions)
    np.testing.assert_array_equal(parquet.bad, jsonl.bad)
    assert len(jsonl.bad) > 0  # the too-short ones


def test_a_pipe_of_series(tmp_path: Path) -> None:
    recs = lines(series_records(5, seed=3))
    data = "".join(f"{r}\n" for r in recs).encode()
    options = SourceOptions(
        content_type="application/jsonlines", series=reading(), on_bad_rows="skip"
    )
    piped = Read(list(PipeSource("<stdin>", io.BytesIO(data), options).read(4)))
    whole = read_series(write_lines(tmp_path / "s.jsonl", recs), on_bad_rows="skip")
    np.testing.assert_array_equal(piped.x, whole.x)  # nothing skipped, positions from 4 on
    np.testing.assert_array_equal(piped.positions, whole.positions + 4)


def test_chunks_stay_within_the_block(tmp_path: Path) -> None:
    recs = [record([float(v) for v in range(30)])] * 3
    path = write_lines(tmp_path / "s.jsonl", lines(recs))
    per_chunk = 2000 // (4 * LAYOUT.width)
    got = read_series(path, block_bytes=2000)
    assert max(c.n_rows for c in got.chunks) <= per_chunk < 28
    assert got.positions.tolist() == list(range(3 * 28))
    np.testing.assert_array_equal(got.x, read_series(path).x)


# -- positions, files and resume -------------------------------------------------------------


def three_files(tmp_path: Path) -> Path:
    """Series in JSON Lines, Parquet and JSON Lines; the first of the second file and one in
    the middle of the third are too short to train on."""
    folder = tmp_path / "series"
    recs = series_records(12, seed=1)
    short = record([1.0])
    write_lines(folder / "a.jsonl", lines(recs[:5]))
    write_parquet(folder / "b.parquet", [short, *recs[5:9]], row_group_size=2)
    write_lines(folder / "c.jsonl", lines([*recs[9:11], short, recs[11]]))
    return folder


def test_positions_run_on_across_files_and_skip_resumes_exactly(tmp_path: Path) -> None:
    folder = three_files(tmp_path)
    whole = read_series(folder, on_bad_rows="skip")
    n = len(whole.positions)
    assert whole.positions.tolist() == list(range(n)) and whole.end == n
    by_file = [
        read_series(folder / f, on_bad_rows="skip") for f in ("a.jsonl", "b.parquet", "c.jsonl")
    ]
    np.testing.assert_array_equal(np.concatenate([f.x for f in by_file]), whole.x)
    first = len(by_file[0].positions)
    bounds = np.cumsum([len(s["target"]) - P for s in series_records(12, seed=1)])
    assert whole.bad.tolist() == [first, int(bounds[10])]
    for k in sorted({1, 2, int(bounds[0]), int(bounds[0]) + 1, first, first + 1, n - 1}):
        rest = read_series(folder, skip=k, on_bad_rows="skip")
        np.testing.assert_array_equal(rest.x, whole.x[k:], err_msg=f"skip {k}")
        assert rest.positions.tolist() == list(range(k, n))
        assert rest.end == n
        # A bad record met before the resume point was counted before it.
        assert rest.bad.tolist() == [b for b in whole.bad.tolist() if b >= k]
    assert sum(c.n_rows for c in read_series(folder, skip=n, on_bad_rows="skip").chunks) == 0


def test_batcher_resume_from_a_batch_ending_inside_a_series(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.jsonl", lines(series_records(10, seed=2)))
    options = SourceOptions(series=reading(), on_bad_rows="skip")
    batches = list(Batcher(open_source(str(path), options), 4))
    whole = torch.cat([b.dense_features() for b in batches])
    end = batches[2].end_position
    assert end == 12 and 10 < end < 15  # inside the fifth series' windows (10 to 14)
    rest = list(Batcher(open_source(str(path), options), 4, skip=end))
    np.testing.assert_array_equal(torch.cat([b.dense_features() for b in rest]), whole[end:])
    skipped = sum(b.skipped for b in batches)
    assert skipped == sum(len(r["target"]) <= P for r in series_records(10, seed=2)) > 0


# -- bad records ------------------------------------------------------------------------------

GOOD = record([1.0, 2.0, 3.0, 4.0])
BAD_RECORDS = [
    ("not json", None, "not valid JSON"),
    ("[1, 2]", None, "not a JSON object but a list"),
    ({**GOOD, "start": "2024-02-30"}, "start", "is no date"),
    ({**GOOD, "start": "27/02/2024"}, "start", "is not 'YYYY-MM-DD HH:MM:SS'"),
    ({k: v for k, v in GOOD.items() if k != "start"}, "start", "missing"),
    ({**GOOD, "start": 20240227}, "start", "not a string but int"),
    ({k: v for k, v in GOOD.items() if k != "target"}, "target", "missing"),
    ({**GOOD, "target": "1,2,3"}, "target", "not a list but a string"),
    ({**GOOD, "target": [1, 2]}, "target",
     "target has 2 values; training needs at least prediction_length + 1 (3)"),
    ({**GOOD, "target": [1, "x", 3, 4]}, "target[1]", '"x" is not a number'),
    ({**GOOD, "target": [1, 2, True, 4]}, "target[2]", "true is not a number"),
    ({**GOOD, "target": [1, 2, [3], 4]}, "target[2]", "[3] is not a number"),
    ({**GOOD, "target": [1, 2, 1e400, 4]}, "target[2]", "non-finite value (inf)"),
    ({**GOOD, "target": [1, 2, -1e39, 4]}, "target[2]", "-1e+39 is beyond float32's range"),
    ({**GOOD, "target": [1, None, None, "NaN", 5]}, "target", "3 of its 5 values are missing"),
    ({**GOOD, "cat": [5]}, "cat[0]", "5 is beyond its cardinality 5"),
    ({**GOOD, "cat": [-1]}, "cat[0]", "-1 is negative"),
    ({**GOOD, "cat": [1.5]}, "cat[0]", "1.5 is not an integer"),
    ({**GOOD, "cat": ["a"]}, "cat[0]", '"a" is not a number'),
    ({**GOOD, "cat": [1, 2]}, "cat", "2 values where the model has 1"),
    ({k: v for k, v in GOOD.items() if k != "cat"}, "cat", "missing: the model has 1"),
    ({**GOOD, "dynamic_feat": [[1, 2, 3, 4]] * 2}, "dynamic_feat",
     "2 features where the model has 1"),
    ({**GOOD, "dynamic_feat": [[1, 2, 3]]}, "dynamic_feat[0]", "3 values where the target has 4"),
    ({**GOOD, "dynamic_feat": [[1, None, 3, 4]]}, "dynamic_feat[0][1]", "missing"),
    ({**GOOD, "dynamic_feat": [[1, 2, 3, 1e300]]}, "dynamic_feat[0][3]",
     "1e+300 is beyond float32's range"),
    ({**GOOD, "dynamic_feat": [[1, 2, 3, 1e999]]}, "dynamic_feat[0][3]", "non-finite value (inf)"),
    ({**GOOD, "dynamic_feat": 3}, "dynamic_feat", "not a list but a number"),
    ({k: v for k, v in GOOD.items() if k != "dynamic_feat"}, "dynamic_feat", "missing"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "field", "message"), BAD_RECORDS)
def test_bad_record_is_named_by_file_line_and_field(
    tmp_path: Path, bad: Any, field: str | None, message: str
) -> None:
    path = write_lines(tmp_path / "s.jsonl", [json.dumps(GOOD), "", *lines([bad])])
    expect_data_error(path, row=3, field=field, message=message, series=reading())


@pytest.mark.parametrize(("bad", "field", "message"), BAD_RECORDS)
def test_bad_record_is_counted_and_skipped(
    tmp_path: Path, bad: Any, field: str | None, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_lines(tmp_path / "s.jsonl", lines([GOOD, bad, GOOD]))
    source = open_source(str(path), SourceOptions(series=reading(), on_bad_rows="skip"))
    got = Read(list(source.read()))
    assert got.positions.tolist() == [0, 1, 2, 3]  # two windows of each good series
    assert got.bad.tolist() == [2]  # met where the second good series' windows begin
    assert source._checker is not None and source._checker.skipped == 1
    assert f"s.jsonl, line 2{'' if field is None else ', ' + field}: " in caplog.text


def test_forecast_and_test_lengths(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.jsonl", lines([{**GOOD, "target": [1, 2]}]))
    expect_data_error(
        path, row=1, field="target", message="a test needs at least prediction_length + 1 (3)",
        series=reading("test"),
    )  # fmt: skip
    path = write_lines(tmp_path / "f.jsonl", lines([GOOD]))
    expect_data_error(
        path, row=1, field="dynamic_feat[0]",
        message="4 values; a forecast needs the target's 4 and the prediction's 2 (6)",
        series=reading("forecast"),
    )  # fmt: skip
    path = write_lines(tmp_path / "e.jsonl", lines([{**GOOD, "target": []}]))
    expect_data_error(
        path, row=1, field="target", message="target is empty", series=reading("forecast")
    )


def test_without_cardinality_any_category_a_float32_holds(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.jsonl", lines([{**GOOD, "cat": [2**24 - 1]}]))
    assert read_series(path, cardinality=()).x[0, -2] == 2**24 - 1
    path = write_lines(tmp_path / "t.jsonl", lines([{**GOOD, "cat": [2**24]}]))
    expect_data_error(
        path, row=1, field="cat[0]", message="beyond 2**24", series=reading(cardinality=())
    )


def test_bad_parquet_record_is_named_by_record(tmp_path: Path) -> None:
    recs = [GOOD, {**GOOD, "cat": [9]}]
    path = write_parquet(tmp_path / "s.parquet", recs)
    expect_data_error(
        path, row=2, field="cat[0]", message="beyond its cardinality", row_label="record",
        series=reading(),
    )  # fmt: skip
    table = pa.table({"start": [START, None], "target": [[1.0, 2, 3], None]})
    pq.write_table(table, tmp_path / "n.parquet")
    no_cat = WindowLayout(H, C, P, time_features=num_time_features("D"))
    expect_data_error(
        tmp_path / "n.parquet", row=2, field="start", message="missing", row_label="record",
        series=SeriesReading("D", no_cat),
    )  # fmt: skip


def test_parquet_columns_of_the_wrong_type(tmp_path: Path) -> None:
    no_cat = WindowLayout(H, C, P, time_features=num_time_features("D"))
    pq.write_table(pa.table({"start": [START], "target": [["1", "2"]]}), tmp_path / "s.parquet")
    with pytest.raises(DataError, match=r"column 'target' is list<.*string>, not lists of numbers"):
        read(tmp_path / "s.parquet", series=SeriesReading("D", no_cat))
    pq.write_table(pa.table({"start": [START]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match="no column 'target'"):
        read(tmp_path / "t.parquet", series=SeriesReading("D", no_cat))


def test_formats_without_series(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.libsvm", ["1 2:3"])
    with pytest.raises(ConfigError, match="long-format rows from CSV, Parquet or SQL, not libsvm"):
        read(path, series=reading())
    path = write_lines(tmp_path / "s.csv", ["1,2,3"])
    with pytest.raises(DataError, match=r"need the columns item_id, timestamp, target.*among 1"):
        read(path, series=reading())
    db = tmp_path / "d.db"
    import sqlite3

    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (x REAL)")
    with pytest.raises(DataError, match=r"no item_id, timestamp, target.* among x"):
        read(f"sqlite:///{db}#SELECT x FROM t", series=reading())


def test_a_layout_that_does_not_fit_the_frequency(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.jsonl", lines([GOOD]))
    with pytest.raises(ConfigError, match="time_freq H has 5 time features"):
        read(path, series=SeriesReading("H", LAYOUT))


# -- fuzz --------------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=int(os.environ.get("STREAMFIT_FUZZ_EXAMPLES", "60")),
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["NaN", "nan", "x", "", "2024-01-01", "2024-01-01 00:00:00"]),
)
_fields = st.one_of(
    _values, st.lists(_values, max_size=8), st.lists(st.lists(_values, max_size=8), max_size=3)
)


def _almost_good(n: int) -> st.SearchStrategy[dict]:
    """Records of ``n`` targets (up to half of them missing) and covariates as long (or as
    a forecast needs), mostly good, so that random windows are built and checked too."""
    numbers = st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n)
    missing = st.lists(st.sampled_from([None, "NaN", math.nan]), max_size=n // 2)
    target = st.builds(lambda x, gaps: [*gaps, *x[len(gaps) :]], numbers, missing)
    covariates = st.sampled_from([n, n + P]).flatmap(
        lambda k: st.lists(
            st.lists(st.floats(-10, 10), min_size=k, max_size=k), min_size=1, max_size=1
        )
    )
    return st.fixed_dictionaries(
        {
            "start": st.sampled_from([START, "2024-01-01 10:00:00", "2023-12-31"]),
            "target": target,
            "cat": st.lists(st.integers(0, 5), min_size=1, max_size=1),
            "dynamic_feat": covariates,
        }
    )


_records = st.one_of(
    st.dictionaries(st.sampled_from(["start", "target", "cat", "dynamic_feat", "other"]), _fields),
    st.fixed_dictionaries(
        {
            "start": st.sampled_from([START, "2024-01-01 10:00:00", "bad", None]),
            "target": st.lists(
                st.one_of(st.floats(-1e6, 1e6), st.none(), st.just("NaN")), max_size=12
            ),
            "cat": st.lists(st.integers(-2, 6), max_size=2),
            "dynamic_feat": st.lists(st.lists(st.floats(-10, 10), max_size=14), max_size=2),
        }
    ),
    st.integers(0, 12).flatmap(_almost_good),
    st.integers(3, 12).flatmap(_almost_good),
    _values,
)  # fmt: skip


@FUZZ
@given(
    recs=st.lists(_records, max_size=6),
    mode=st.sampled_from(["train", "test", "forecast"]),
    on_bad_rows=st.sampled_from(["error", "skip"]),
    fmt=st.sampled_from(["jsonl", "parquet"]),
)
def test_random_records_give_windows_or_a_data_error(
    tmp_path: Path, recs: list[Any], mode: WindowsMode, on_bad_rows: str, fmt: str
) -> None:
    path = tmp_path / f"f.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    else:
        try:
            pq.write_table(pa.Table.from_pylist([r for r in recs if isinstance(r, dict)]), path)
        except (pa.ArrowException, OverflowError):
            return  # no Parquet file has these columns
    try:
        got = read(path, series=reading(mode), on_bad_rows=on_bad_rows)
    except DataError as err:
        # Skipped and counted, unless the file's own (a Parquet column of another type).
        assert on_bad_rows == "error" or err.row is None, str(err)
        return
    for chunk in got.chunks:
        assert chunk.batch.num_columns == 1
    if got.chunks:
        x = got.x
        assert x.shape[1] == LAYOUT.width and np.isfinite(x).all()
        assert got.positions.tolist() == list(range(len(x)))
