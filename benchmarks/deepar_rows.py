"""DeepAR on long-format rows (item_id, timestamp, target, cat_j) against the same series as
SageMaker's records: forecast quality, read speed and memory, as ratios rows / records.

    python benchmarks/deepar_rows.py [--seeds 2] [--parts quality read memory] [--json out.json]
    python benchmarks/deepar_rows.py --read-items 2000 --items 10000 30000 --table-mb 4
    python benchmarks/deepar_rows.py --parts quality --panel FOLDER --set replay=4

``quality``: the tourism panel (deepar_data.py; or ``--panel``, a prepared folder) as its
records and as long-format CSV rows ordered by timestamp, then item (a timestamp is the first
day of the period's first month: the record's ``start`` plus its steps; ``cat`` as ``cat_0 ..``
columns); and, as a control, the same rows ordered by item, then timestamp (the records'
windows in the records' order, through the rows' reader). streamfit DeepAR trains on each
(deepar.py's settings for the panel: context = horizon, its cardinality, student-T; ``--set``
changes them) with its test channel in the same format, ``--seeds`` times; ``test wQL`` is
streamfit's own ``test:mean_wQuantileLoss``. Each run is its own process (one thread): wall
time from its start to the trained and tested model, peak RSS its own.

``read``: ``--read-items`` generated series of ``--read-steps`` steps, daily (context 14,
horizon 7: windows of 1,114 steps) and monthly (context 12, horizon 12: 61 steps), written as
JSON Lines records and as CSV rows; a process reads each (``open_source`` with DeepAR's
training reading, every chunk, nothing trained) ``--repeats`` times, the formats taking turns;
the fastest read of each counts.

``memory``: ``--items`` generated monthly items of 24 to 48 steps as CSV rows, ``--cohort``
items starting each month (so that about 36 x cohort are in progress at a time, however many
there are), trained on (a small network, large batches, little replay: the reading is what is
measured) at each ``--table-mb`` (``series_table_mb``). The table keeps each item's last
window; once full, it evicts the least recently updated item, one whose rows have ended where
the table holds more items than are in progress. ``windows`` against ``expected`` (what the
items' lengths give) says whether an item was evicted before its end.

Generated files are kept under ``--work`` (benchmarks/data/deepar_rows) for the next run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import deepar_data
import harness
from deepar import LIKELIHOODS, ONE_THREAD
from deepar_data import Panel

WORK = deepar_data.HERE / "data" / "deepar_rows"
PARTS = ("quality", "read", "memory")
FORMATS = ("records", "rows")
#: The quality part's formats: the records, the rows ordered by time (as a query ``ORDER BY
#: timestamp`` returns them), and the same rows ordered by item (a control: the windows of
#: the records in the order of the records, read by the rows' reader).
QUALITY_FORMATS = {"records": "", "rows": "", "rows-by-item": "-by-item"}

#: The read part's two settings: DeepAR's hyperparameters (cat_0 of 5 groups).
READ_SETTINGS: dict[str, dict[str, Any]] = {
    "daily": {"time_freq": "D", "context_length": 14, "prediction_length": 7},
    "monthly": {"time_freq": "M", "context_length": 12, "prediction_length": 12},
}
GROUPS = 5
READ_ITEMS, READ_STEPS = 10_000, 100

MEMORY_ITEMS = (10_000, 100_000, 300_000)
MEMORY_TABLE_MB = (4.0, 64.0)
MEMORY_LENGTHS = (24, 48)  # steps of an item, drawn uniformly from [low, high]
COHORT = 100
#: The memory part's DeepAR: a window every 12 steps, a small network and large batches with
#: little replay, so that 10^5 items train in a minute; the reservoir is kept small so that
#: it does not grow with the windows read (the table is what is measured).
MEMORY_HYPERPARAMETERS: dict[str, Any] = {
    "time_freq": "M",
    "context_length": 12,
    "prediction_length": 12,
    "cardinality": [GROUPS],
    "num_dynamic_feat": "ignore",
    "stride": 12,
    "num_cells": 8,
    "num_layers": 1,
    "mini_batch_size": 2048,
    "replay": 0.25,
    "replay_capacity_mb": 1,
}


# -- data ------------------------------------------------------------------------------------


def month_text(month: int) -> str:
    """The first day of month ``month`` (counted from January of year 0).

    >>> month_text(1998 * 12), month_text(1998 * 12 + 3)
    ('1998-01-01', '1998-04-01')
    """
    return f"{month // 12:04d}-{month % 12 + 1:02d}-01"


def period_texts(freq: str, periods: np.ndarray) -> list[str]:
    """``YYYY-MM-DD`` of each period: days since 1970 (``D``) or months since year 0 (``M``).

    >>> period_texts("D", np.array([0, 31])), period_texts("M", np.array([24001]))
    (['1970-01-01', '1970-02-01'], ['2000-02-01'])
    """
    if freq == "D":
        return np.datetime_as_string(periods.astype("datetime64[D]")).tolist()
    return [month_text(int(m)) for m in periods]


def panel_to_rows(panel: Panel, folder: Path) -> dict[str, Path]:
    """The panel's train and test records as long-format CSV rows in ``folder``
    (``{split}.csv``: ordered by timestamp, then item, its key; ``{split}-by-item.csv``: by
    item, then timestamp), ``cat`` as ``cat_0 ..`` columns. Returns the paths by name."""
    meta = panel.meta
    months = {"Q": 3, "M": 1}[meta["freq"]]
    keys = meta["keys"]
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        rows = []
        for key, record in zip(keys, panel.series(split), strict=True):
            year, month = int(record["start"][:4]), int(record["start"][5:7])
            first = year * 12 + month - 1
            for t, value in enumerate(record["target"]):
                rows.append((first + t * months, key, value, record.get("cat", [])))
        cats = len(rows[0][3])
        header = ["item_id", "timestamp", "target", *(f"cat_{j}" for j in range(cats))]
        for name, order in ((split, (0, 1)), (f"{split}-by-item", (1, 0))):
            rows.sort(key=lambda r, order=order: (r[order[0]], r[order[1]]))
            path = out[name] = folder / f"{name}.csv"
            with path.open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(header)
                for month, key, value, cat in rows:
                    writer.writerow([key, month_text(month), "" if value is None else value, *cat])
    return out


def generated_panel(
    items: int, steps: int, freq: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, values, groups)``: ``items`` series of ``steps`` steps (``values``, items x
    steps), each a level drawn log-uniformly from 1 to 1,000 times a weekly (``D``) or yearly
    (``M``) cycle of its group's phase, with noise; starts spread over a season (periods as
    :func:`period_texts` reads them)."""
    rng = np.random.default_rng(seed)
    season = 7 if freq == "D" else 12
    base = 19_723 if freq == "D" else 2015 * 12  # 2024-01-01, 2015-01
    starts = base + rng.integers(0, season, items)
    groups = rng.integers(0, GROUPS, items)
    level = 10 ** rng.uniform(0, 3, items)
    t = starts[:, None] + np.arange(steps)
    cycle = np.sin(2 * math.pi * t / season + groups[:, None])
    noise = 1 + 0.1 * rng.standard_normal((items, steps))
    values = np.round(level[:, None] * (1 + 0.4 * cycle) * noise, 2)
    return starts, values, groups


def write_records(path: Path, freq: str, starts: np.ndarray, values: np.ndarray,
                  groups: np.ndarray) -> None:  # fmt: skip
    texts = period_texts(freq, starts)
    with _replacing(path) as tmp, tmp.open("w") as f:
        for start, target, group in zip(texts, values.tolist(), groups.tolist(), strict=True):
            f.write(json.dumps({"start": start, "target": target, "cat": [group]}) + "\n")


def write_rows(path: Path, freq: str, starts: np.ndarray, values: np.ndarray,
               groups: np.ndarray) -> None:  # fmt: skip
    """The same series as CSV rows ordered by timestamp, then item."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    items, steps = values.shape
    period = (starts[:, None] + np.arange(steps)).ravel()
    item = np.repeat(np.arange(items), steps)
    order = np.lexsort((item, period))
    lo = int(period.min())
    days = pa.array(period_texts(freq, np.arange(lo, int(period.max()) + 1)))
    names = pa.array([f"item-{i:07d}" for i in range(items)])
    table = pa.table(
        {
            "item_id": names.take(pa.array(item[order])),
            "timestamp": days.take(pa.array(period[order] - lo)),
            "target": pa.array(values.ravel()[order]),
            "cat_0": pa.array(groups[item[order]]),
        }
    )
    with _replacing(path) as tmp:
        pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="none"))


def memory_items(items: int, cohort: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of the memory part's items: ``cohort`` start each month from
    1900-01, each with 24 to 48 steps."""
    rng = np.random.default_rng(seed)
    low, high = MEMORY_LENGTHS
    return 1900 * 12 + np.arange(items) // cohort, rng.integers(low, high + 1, items)


def expected_windows(lengths: np.ndarray, prediction: int, stride: int) -> int:
    """Training windows of items of ``lengths`` steps read whole: one at each step ``k``
    from ``prediction`` on, every ``stride``.

    >>> expected_windows(np.array([12, 13, 24, 36]), 12, 12)  # 0, 1, 1 and 2
    4
    """
    n = np.where(lengths > prediction, (lengths - 1 - prediction) // stride + 1, 0)
    return int(n.sum())


def write_memory_rows(path: Path, items: int, cohort: int, seed: int = 0) -> None:
    """:func:`memory_items` as CSV rows ordered by timestamp, then item, written a year of
    months at a time (never the whole file in memory)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    starts, lengths = memory_items(items, cohort, seed)
    rng = np.random.default_rng(seed + 1)
    level = 10 ** rng.uniform(0, 3, items)
    groups = rng.integers(0, GROUPS, items)
    ends = starts + lengths
    schema = pa.schema(
        [("item_id", pa.string()), ("timestamp", pa.string()), ("target", pa.float64()),
         ("cat_0", pa.int64())]
    )  # fmt: skip
    options = pacsv.WriteOptions(quoting_style="none")
    with _replacing(path) as tmp, pacsv.CSVWriter(tmp, schema, write_options=options) as out:
        for first in range(int(starts[0]), int(ends.max()), 12):
            months = np.arange(first, first + 12)
            # items in progress in these months: starts rise with the item's index
            lo = int(np.searchsorted(starts, first - MEMORY_LENGTHS[1], side="left"))
            hi = int(np.searchsorted(starts, months[-1], side="right"))
            item = np.arange(lo, hi)
            grid_item = np.repeat(item, len(months))
            grid_month = np.tile(months, len(item))
            live = (grid_month >= starts[grid_item]) & (grid_month < ends[grid_item])
            grid_item, grid_month = grid_item[live], grid_month[live]
            order = np.lexsort((grid_item, grid_month))
            grid_item, grid_month = grid_item[order], grid_month[order]
            cycle = np.sin(2 * math.pi * grid_month / 12 + groups[grid_item])
            noise = 1 + 0.1 * rng.standard_normal(len(grid_item))
            values = np.round(level[grid_item] * (1 + 0.4 * cycle) * noise, 2)
            batch = pa.record_batch(
                [
                    pa.array([f"item-{i:07d}" for i in grid_item.tolist()]),
                    pa.array(period_texts("M", grid_month)),
                    pa.array(values),
                    pa.array(groups[grid_item]),
                ],
                schema=schema,
            )
            out.write_batch(batch)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed to it when the block succeeds: a file
    half-written by an interrupted run is never taken for a finished one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    yield tmp
    os.replace(tmp, path)


def read_files(work: Path, setting: str, items: int, steps: int) -> dict[str, Path]:
    """The read part's files of ``setting`` (written on first use)."""
    stem = work / f"read-{setting}-{items}x{steps}"
    files = {"records": stem.with_suffix(".jsonl"), "rows": stem.with_suffix(".csv")}
    if not all(p.exists() for p in files.values()):
        freq = READ_SETTINGS[setting]["time_freq"]
        panel = generated_panel(items, steps, freq)
        write_records(files["records"], freq, *panel)
        write_rows(files["rows"], freq, *panel)
        print(f"  wrote {stem}.jsonl and .csv", flush=True)
    return files


def memory_file(work: Path, items: int, cohort: int) -> Path:
    path = work / f"memory-{items}-cohort{cohort}.csv"
    if not path.exists():
        started = time.perf_counter()
        write_memory_rows(path, items, cohort)
        print(f"  wrote {path} ({time.perf_counter() - started:.0f} s)", flush=True)
    return path


# -- the children ----------------------------------------------------------------------------


def quality_child(fmt: str, args: Any) -> None:
    """streamfit DeepAR trained and tested on the panel in format ``fmt``."""
    import streamfit

    panel = Panel(args.panel)
    meta = panel.meta
    files = (
        {"train": panel.train, "test": panel.test}
        if fmt == "records"
        else {s: args.rows_folder / f"{s}{QUALITY_FORMATS[fmt]}.csv" for s in ("train", "test")}
    )
    h = meta["prediction_length"]
    hyperparameters = {
        "time_freq": meta["freq"],
        "context_length": h,
        "prediction_length": h,
        "cardinality": meta["cardinality"],
        "likelihood": args.likelihood,
        "seed": args.seed,
        **harness.settings(args.set),
    }
    started = time.perf_counter()
    result = streamfit.train(
        "deepar", str(files["train"]), test=str(files["test"]),
        hyperparameters=hyperparameters, progress=False, threads=1,
    )  # fmt: skip
    out = {"fit_seconds": time.perf_counter() - started, **harness.trained()}
    out.update(
        format=fmt,
        seed=args.seed,
        own_wql=result.metrics.get("test:mean_wQuantileLoss"),
        own_mase=result.metrics.get("test:MASE"),
        windows=int(result.metrics["train:rows"]),
        steps=int(result.state.meta["net"]["steps"]),
        hyperparameters=hyperparameters,
    )
    harness.send(out)


def read_child(setting: str, fmt: str, args: Any) -> None:
    """Read one file into DeepAR's training windows, nothing trained."""
    import streamfit

    path = read_files(args.work, setting, args.read_items, args.read_steps)[fmt]
    hyperparameters = {**READ_SETTINGS[setting], "cardinality": [GROUPS]}
    algo = streamfit.get_algorithm("deepar")({**hyperparameters, "num_dynamic_feat": "ignore"})
    reading = algo.series_reading("train")
    started = time.perf_counter()
    source = streamfit.open_source(str(path), streamfit.SourceOptions(series=reading))
    windows = chunks = 0
    for chunk in source.read():
        windows += chunk.n_rows
        chunks += 1
    seconds = time.perf_counter() - started
    out = harness.trained()
    out.update(
        setting=setting,
        format=fmt,
        windows=windows,
        chunks=chunks,
        window_steps=reading.layout.length,
        read_seconds=seconds,
        windows_per_second=windows / seconds,
    )
    harness.send(out)


class _Evictions(logging.Handler):
    """Whether the series table warned that it evicted an item."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        self.seen = self.seen or "evicted" in record.getMessage()


def memory_child(items: int, table_mb: float, args: Any) -> None:
    """Train on the memory part's rows of ``items`` items with a table of ``table_mb``."""
    import streamfit
    from streamfit.data.series_long import SeriesTable

    path = memory_file(args.work, items, args.cohort)
    hyperparameters = {**MEMORY_HYPERPARAMETERS, "series_table_mb": table_mb}
    evictions = _Evictions()
    logging.getLogger("streamfit.data.series_long").addHandler(evictions)
    started = time.perf_counter()
    result = streamfit.train("deepar", str(path), hyperparameters=hyperparameters,
                             progress=False, threads=1)  # fmt: skip
    out = {"fit_seconds": time.perf_counter() - started, **harness.trained()}
    algo = streamfit.get_algorithm("deepar")(result.state.hyperparameters)
    _, lengths = memory_items(items, args.cohort)
    hp = algo.hp
    out.update(
        items=items,
        rows=int(lengths.sum()),
        series_table_mb=table_mb,
        table_items=SeriesTable(algo.series_reading("train")).capacity,
        in_progress=int(args.cohort * lengths.mean()),
        evicted="yes" if evictions.seen else "no",
        windows=int(result.metrics["train:rows"]),
        expected=expected_windows(lengths, hp.prediction_length, hp.resolved_stride),
        steps=int(result.state.meta["net"]["steps"]),
        hyperparameters=hyperparameters,
    )
    out["rows_per_second"] = out["rows"] / out["fit_seconds"]
    harness.send(out)


def child(name: str, args: Any) -> None:
    part, *rest = name.split()
    if part == "quality":
        quality_child(rest[0], args)
    elif part == "read":
        read_child(rest[0], rest[1], args)
    else:
        memory_child(int(rest[0]), float(rest[1]), args)


# -- the parent ------------------------------------------------------------------------------


def main() -> None:
    parser = harness.parser(__doc__, rows=None)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--panel", type=Path, help="quality's prepared folder (deepar_data.py)")
    parser.add_argument("--root", type=Path, default=deepar_data.DATA, help="deepar_data's")
    parser.add_argument("--seeds", type=int, default=2, help="quality's runs of each format")
    parser.add_argument("--set", action="append", help="quality's hyperparameter, name=value")
    parser.add_argument("--read-items", type=int, default=READ_ITEMS)
    parser.add_argument("--read-steps", type=int, default=READ_STEPS)
    parser.add_argument("--repeats", type=int, default=2, help="reads of each file")
    parser.add_argument("--items", type=int, nargs="+", default=list(MEMORY_ITEMS))
    parser.add_argument("--table-mb", type=float, nargs="+", default=list(MEMORY_TABLE_MB))
    parser.add_argument("--cohort", type=int, default=COHORT, help="items starting a month")
    parser.add_argument("--work", type=Path, default=WORK, help="generated files")
    # the children's
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--likelihood", default="student-T", help=argparse.SUPPRESS)
    parser.add_argument("--rows-folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ONE_THREAD:
        os.environ[name] = "1"
    if args.child:
        child(args.child, args)
        return
    common = [x for s in args.set or [] for x in ("--set", s)]
    common += ["--work", str(args.work)]
    doc: dict[str, Any] = {}
    if "quality" in args.parts:
        doc["quality"] = run_quality(args, common)
    if "read" in args.parts:
        doc["read"] = run_read(args, common)
    if "memory" in args.parts:
        doc["memory"] = run_memory(args, common)
    harness.write_json(args.json, doc)


def _run(args: Any, name: str, extra: list[str]) -> list[dict[str, Any]]:
    """Child ``name``'s result (in a list), or nothing where ``--match`` leaves it out."""
    if args.match and args.match not in name:
        return []
    return harness.run_all(__file__, [name], extra)


def run_quality(args: Any, common: list[str]) -> dict[str, Any]:
    panel = Panel(args.panel) if args.panel else deepar_data.prepare("tourism", args.root)
    meta = panel.meta
    likelihood = LIKELIHOODS.get(panel.folder.name, "student-T")
    rows = panel_to_rows(panel, args.work / f"quality-{panel.folder.name}")
    print(
        f"quality: {panel.folder} ({len(meta['keys'])} series, freq {meta['freq']}, horizon "
        f"{meta['prediction_length']}) as records and as rows ({rows['train']})",
        flush=True,
    )
    extra = [*common, "--panel", str(panel.folder), "--rows-folder", str(rows["train"].parent)]
    extra += ["--likelihood", likelihood]
    runs = []
    for seed in range(args.seeds):
        for fmt in QUALITY_FORMATS:
            for doc in _run(args, f"quality {fmt}", [*extra, "--seed", str(seed)]):
                runs.append({**doc, "format": fmt, "seed": seed})
    summary = harness.mean_by(runs, "format")
    print()
    harness.report(runs, QUALITY_COLUMNS, baseline="records", group="seed", label="format",
                   label_header="format", labels=[("seed", "seed")])  # fmt: skip
    print()
    harness.report(summary, QUALITY_COLUMNS, baseline="records", label="format",
                   label_header=f"format (mean of {args.seeds} seeds)")  # fmt: skip
    print()
    return {"panel": str(panel.folder), "runs": runs, "summary": summary}


QUALITY_COLUMNS = [
    harness.Column("test wQL", "own_wql", ".4f"),
    harness.Column("wQL vs records", "own_wql", ".3f", vs="ratio"),
    harness.Column("test MASE", "own_mase", ".3f"),
    harness.Column("windows", "windows", ",.0f"),
    harness.Column("fit s", "fit_seconds", ",.1f"),
    harness.Column("wall s", "wall", ",.1f"),
    harness.Column("wall vs records", "wall", ".2f", vs="ratio"),
    harness.Column("peak RSS MB", "peak_rss_mb", ",.0f"),
    harness.Column("RSS vs records", "peak_rss_mb", ".2f", vs="ratio"),
]


def run_read(args: Any, common: list[str]) -> list[dict[str, Any]]:
    extra = [*common, "--read-items", str(args.read_items), "--read-steps", str(args.read_steps)]
    best = []
    for setting in READ_SETTINGS:
        read_files(args.work, setting, args.read_items, args.read_steps)
        print(f"read: {setting}, {args.read_items:,} items x {args.read_steps} steps", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {fmt: [] for fmt in FORMATS}
        for _ in range(args.repeats):
            for fmt in FORMATS:
                runs[fmt] += _run(args, f"read {setting} {fmt}", extra)
        for fmt in [f for f in FORMATS if runs[f]]:
            good = [r for r in runs[fmt] if "error" not in r]
            fastest = max(good, key=lambda r: r["windows_per_second"], default=runs[fmt][0])
            best.append({**fastest, "setting": setting, "format": fmt, "reads": len(good)})
    print()
    harness.report(
        best,
        [
            harness.Column("window steps", "window_steps", ",.0f"),
            harness.Column("windows", "windows", ",.0f"),
            harness.Column("read s", "read_seconds", ",.2f"),
            harness.Column("windows/s", "windows_per_second", ",.0f"),
            harness.Column("speed vs records", "windows_per_second", ".2f", vs="ratio"),
            harness.Column("peak RSS MB", "peak_rss_mb", ",.0f"),
        ],
        baseline="records",
        group="setting",
        label="format",
        label_header=f"read (best of {args.repeats})",
        labels=[("setting", "setting")],
    )
    print()
    return best


def run_memory(args: Any, common: list[str]) -> list[dict[str, Any]]:
    results = []
    extra = [*common, "--cohort", str(args.cohort)]
    for items in args.items:
        path = memory_file(args.work, items, args.cohort)
        print(f"memory: {items:,} monthly items as rows ({path})", flush=True)
        for mb in args.table_mb:
            for doc in _run(args, f"memory {items} {mb:g}", extra):
                results.append({**doc, "label": f"{items:,}", "table": f"{mb:g} MB"})
    print()
    harness.report(
        results,
        [
            harness.Column("rows", "rows", ",.0f"),
            harness.Column("in progress", "in_progress", ",.0f"),
            harness.Column("table holds", "table_items", ",.0f"),
            harness.Column("windows", "windows", ",.0f"),
            harness.Column("expected", "expected", ",.0f"),
            harness.Column("rows/s", "rows_per_second", ",.0f"),
            harness.Column("wall s", "wall", ",.1f"),
            harness.Column("peak RSS MB", "peak_rss_mb", ",.0f"),
            harness.Column("RSS vs fewest items", "peak_rss_mb", "+.1%", vs="change"),
        ],
        baseline=lambda r: r.get("items") == min(args.items),
        group="table",
        label="label",
        label_header="items",
        labels=[("series_table_mb", "table"), ("evicted", "evicted")],
    )
    return results


if __name__ == "__main__":
    main()
