"""streamfit's DeepAR against the forecasters a user would pick instead, on real series.

    python benchmarks/deepar.py [--data tourism|pbs] [--seeds 3] [--match NAME] [--json out.json]
    python benchmarks/deepar.py --gluonts-batches 500 --set replay=8 --set mini_batch_size=64
    python benchmarks/deepar.py --scale [--series 10000 1000000]   # generated series from disk

Data (deepar_data.py, written under benchmarks/data/deepar/ on first use): the Australian
domestic tourism panel (304 quarterly series, the last 8 quarters held out, student-T
likelihood) or ``--data pbs``, the PBS prescription counts (336 monthly series, many sparse,
the last 12 months held out, negative-binomial likelihood), as SageMaker's JSON Lines.
Every contender reads the same ``train.jsonl`` (each series without its held-out points) in
its own process, one thread (OMP/BLAS, torch), one after the other, and forecasts the points
after each series' end; wall time runs from the parent starting it to the model being trained
(start-up, imports and reading included; forecasting and scoring not), ``fit s`` is the
training call alone, peak RSS the process's own (VmHWM).

Contenders: streamfit DeepAR (``streamfit.train`` on the files: one read, with replay, the
test channel scored into its ``metrics.json``), GluonTS's torch ``DeepAREstimator`` for
``--gluonts-batches`` batches of 32 (2,500 by default, the issue's reference), statsforecast's
``AutoETS`` and ``SeasonalNaive`` (deepar_peers.py says how each is set up). Both DeepARs use
the same frequency, horizon, context length (= the horizon), categorical features and
likelihood (``--likelihood``); ``--set`` changes streamfit's hyperparameters only.

Every forecast is scored by the same functions (deepar_scoring.py: GluonTS's definitions, the
nearest-rank quantiles of 100 sample paths) on the same held-out points: mean wQL over the
quantiles 0.1 .. 0.9, ND (= wQL[0.5], the point forecast's score), MASE with the frequency's
season, RMSE of the mean. ``own wQL`` is streamfit's own ``test:mean_wQuantileLoss``, a check
on both. The neural contenders vary with the seed by more than they differ (GluonTS's mean
wQL on tourism ranged 0.13 to 0.16 over four seeds): ``--seeds N`` runs each N times (seeds
0 .. N-1) and reports the mean and the standard deviation; the table of runs compares each
with GluonTS's of the same seed.

``--scale`` writes 10^4 and 10^6 generated monthly series (deepar_data.generated_series) and
trains streamfit on each from disk: peak memory must not grow with the number of series.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

import deepar_data
import harness
from deepar_data import Panel
from deepar_peers import PEERS, Fitted
from deepar_scoring import Forecasts, score

ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
LIKELIHOODS = {"tourism": "student-T", "pbs": "negative-binomial"}
NUM_SAMPLES = 100
GLUONTS_BATCHES = 2500

#: name: what trains it (deepar_peers.PEERS, or streamfit); the neural ones repeat per seed.
CONTENDERS = {
    "streamfit DeepAR, one read + replay": "streamfit",
    "GluonTS DeepAR (torch)": "gluonts",
    "statsforecast AutoETS": "autoets",
    "statsforecast SeasonalNaive": "naive",
}
NEURAL = frozenset({"streamfit", "gluonts"})

SCALE_SERIES = (10_000, 1_000_000)
SCALE_TEST = 1_000
#: The scale run's streamfit settings: one training window a series, its most recent (the
#: stride is longer than any generated series; GluonTS's sampler also takes about one a
#: series per pass), and one replay batch per fresh one, so that 10^6 series train in
#: minutes on one thread.
SCALE_HYPERPARAMETERS: dict[str, Any] = {
    "time_freq": "M",
    "context_length": 12,
    "prediction_length": 12,
    "cardinality": [deepar_data.GROUPS],
    "stride": 96,
    "replay": 1,
}


# -- streamfit -------------------------------------------------------------------------------


def streamfit_deepar(
    panel: Panel,
    *,
    seed: int = 0,
    likelihood: str = "student-T",
    num_samples: int = NUM_SAMPLES,
    settings: dict[str, Any] | None = None,
    **_: Any,
) -> Fitted:
    """Train on the panel's files through the public API."""
    import streamfit

    meta = panel.meta
    h = meta["prediction_length"]
    hyperparameters = {
        "time_freq": meta["freq"],
        "context_length": h,
        "prediction_length": h,
        "cardinality": meta["cardinality"],
        "likelihood": likelihood,
        "seed": seed,
        **(settings or {}),
    }
    started = time.perf_counter()
    result = streamfit.train(
        "deepar",
        str(panel.train),
        test=str(panel.test),
        hyperparameters=hyperparameters,
        progress=False,
        threads=1,
    )
    info: dict[str, Any] = {
        "fit_seconds": time.perf_counter() - started,
        "steps": int(result.state.meta["net"]["steps"]),
        "windows": int(result.state.trainer.rows),
        "own_wql": result.metrics.get("test:mean_wQuantileLoss"),
        "own_mase": result.metrics.get("test:MASE"),
        "own_rmse": result.metrics.get("test:RMSE"),
        "metrics": result.metrics,
        "hyperparameters": hyperparameters,
    }

    def forecast() -> Forecasts:
        config = {"num_samples": num_samples, "output_types": ["samples"]}
        answers = streamfit.predict_records(result.model, str(panel.train), inference_config=config)
        return Forecasts.from_samples(np.array([a["samples"] for a in answers]))

    return forecast, info


# -- a contender in its own process ----------------------------------------------------------


def child(name: str, args: Any) -> None:
    """Train one contender, then forecast and score it (timed apart)."""
    panel = Panel(args.panel)
    function = CONTENDERS[name]
    options = {
        "seed": args.seed,
        "likelihood": args.likelihood,
        "num_samples": args.num_samples,
        "batches": args.gluonts_batches,
        "settings": harness.settings(args.set),
    }
    started = time.perf_counter()
    fit = streamfit_deepar if function == "streamfit" else PEERS[function]
    forecast, info = fit(panel, **options)
    out = {"train_seconds_inside": time.perf_counter() - started, **harness.trained()}
    scoring = time.perf_counter()
    series = [np.array(r["target"], dtype=np.float64) for r in panel.series("test")]
    forecasts = forecast()
    out["predict_seconds"] = time.perf_counter() - scoring
    out.update(score(series, forecasts, panel.meta["season"]))
    out.update(info, seed=args.seed, series=len(series))
    harness.send(out)


# -- the scale run ---------------------------------------------------------------------------


def scale_files(folder: Path, series: int, test: int) -> tuple[Path, Path]:
    return folder / f"generated-{series}.jsonl", folder / f"generated-test-{test}.jsonl"


def scale_child(series: int, args: Any) -> None:
    import streamfit

    train, test = scale_files(args.scale_data, series, args.scale_test)
    hyperparameters = {**SCALE_HYPERPARAMETERS, **harness.settings(args.set)}
    started = time.perf_counter()
    result = streamfit.train(
        "deepar", str(train), test=str(test), hyperparameters=hyperparameters,
        progress=False, threads=1,
    )  # fmt: skip
    out = {"train_seconds_inside": time.perf_counter() - started, **harness.trained()}
    m = result.metrics
    out.update(
        series=series,
        windows=int(result.state.trainer.rows),
        steps=int(result.state.meta["net"]["steps"]),
        own_wql=m.get("test:mean_wQuantileLoss"),
        own_mase=m.get("test:MASE"),
        hyperparameters=hyperparameters,
    )
    harness.send(out)


# -- the parent ------------------------------------------------------------------------------


def main() -> None:
    parser = harness.parser(__doc__, rows=None)
    parser.add_argument("--data", choices=sorted(LIKELIHOODS), default="tourism")
    parser.add_argument("--panel", type=Path, help="a prepared folder (deepar_data.py)")
    parser.add_argument("--root", type=Path, default=deepar_data.DATA, help="data folder")
    parser.add_argument("--seeds", type=int, default=1, help="runs of each neural contender")
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--likelihood", help="both DeepARs' (default: the data set's)")
    parser.add_argument("--gluonts-batches", type=int, default=GLUONTS_BATCHES)
    parser.add_argument("--num-samples", type=int, default=NUM_SAMPLES)
    parser.add_argument("--set", action="append", help="a streamfit hyperparameter, name=value")
    parser.add_argument("--scale", action="store_true", help="generated series from disk")
    parser.add_argument("--series", type=int, nargs="+", default=list(SCALE_SERIES))
    parser.add_argument("--scale-test", type=int, default=SCALE_TEST, help="--scale's test")
    parser.add_argument("--scale-data", type=Path, help="--scale's folder (default: ROOT/scale)")
    args = parser.parse_args()
    for name in ONE_THREAD:
        os.environ[name] = "1"
    args.likelihood = args.likelihood or LIKELIHOODS[args.data]
    args.scale_data = args.scale_data or args.root / "scale"
    if args.child:
        if args.child.startswith("scale "):
            scale_child(int(args.child.split()[1]), args)
        else:
            child(args.child, args)
        return
    common = [x for s in args.set or [] for x in ("--set", s)]
    if args.scale:
        run_scale(args, common)
    else:
        run_comparison(args, common)


def run_comparison(args: Any, common: list[str]) -> None:
    panel = Panel(args.panel) if args.panel else deepar_data.prepare(args.data, args.root)
    meta = panel.meta
    print(
        f"data: {panel.folder} ({len(meta['keys'])} series, freq {meta['freq']}, "
        f"horizon {meta['prediction_length']}, likelihood {args.likelihood})",
        flush=True,
    )
    names = [n for n in CONTENDERS if not args.match or args.match in n]
    extra = [
        *("--panel", str(panel.folder), "--likelihood", args.likelihood),
        *("--gluonts-batches", str(args.gluonts_batches), "--num-samples", str(args.num_samples)),
        *common,
    ]
    runs = []
    for name in names:
        seeds = range(args.seeds) if CONTENDERS[name] in NEURAL else range(1)
        for seed in seeds:
            for doc in harness.run_all(__file__, [name], [*extra, "--seed", str(seed)]):
                runs.append({**doc, "seed": seed})
    summary = summarise(runs)
    print()
    if args.seeds > 1:
        # each run against GluonTS's of the same seed
        harness.report(
            runs, RUN_COLUMNS, baseline="GluonTS", group="seed", labels=[("seed", "seed")]
        )
        print()
    harness.report(summary, COLUMNS, baseline="GluonTS")
    harness.write_json(args.json, {"data": args.data, "panel": str(panel.folder),
                                   "likelihood": args.likelihood, "runs": runs,
                                   "summary": summary})  # fmt: skip


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per contender: the mean of each number over its seeds, with the standard
    deviation, least and most of the mean wQL (``wql_sd`` needs two seeds).

    >>> rows = summarise([{"name": "a", "mean_wQuantileLoss": 0.1, "wall": 2.0},
    ...                   {"name": "a", "mean_wQuantileLoss": 0.2, "wall": 4.0}])
    >>> [(r["seeds"], round(r["mean_wQuantileLoss"], 3), round(r["wql_sd"], 4), r["wall"])
    ...  for r in rows]
    [(2, 0.15, 0.0707, 3.0)]
    """
    out = harness.mean_by(runs, "name", count="seeds")
    for row in out:
        good = [r for r in runs if r["name"] == row["name"] and "error" not in r]
        if not good:
            continue
        row["failed"] = sum(r["name"] == row["name"] for r in runs) - len(good)
        wql = [r["mean_wQuantileLoss"] for r in good]
        row["wql_min"], row["wql_max"] = min(wql), max(wql)
        row["wql_sd"] = statistics.stdev(wql) if len(wql) > 1 else None
    return out


COLUMNS = [
    harness.Column("seeds", "seeds", ".0f"),
    harness.Column("mean wQL", "mean_wQuantileLoss", ".4f"),
    harness.Column("wQL sd", "wql_sd", ".4f"),
    harness.Column("vs GluonTS", "mean_wQuantileLoss", "+.1%", vs="change"),
    harness.Column("ND (wQL[0.5])", "ND", ".4f"),
    harness.Column("MASE", "MASE", ".3f"),
    harness.Column("RMSE", "RMSE", ",.2f"),
    harness.Column("own wQL", "own_wql", ".4f"),
    harness.Column("steps", "steps", ",.0f"),
    harness.Column("fit s", "fit_seconds", ",.1f"),
    harness.Column("wall s", "wall", ",.1f"),
    harness.Column("x GluonTS", "wall", ".2f", vs="ratio"),
    harness.Column("peak RSS MB", "peak_rss_mb", ",.0f"),
]
RUN_COLUMNS = [c for c in COLUMNS if c.key not in ("seeds", "wql_sd")]


def run_scale(args: Any, common: list[str]) -> None:
    folder = args.scale_data
    results = []
    for n in args.series:
        print(f"data: {n:,} generated series (cached in {folder})", flush=True)
        train, test = scale_files(folder, n, args.scale_test)
        deepar_data.write_generated(train, n, seed=0)
        deepar_data.write_generated(test, args.scale_test, seed=1)
        extra = [*common, "--scale-data", str(folder), "--scale-test", str(args.scale_test)]
        for doc in harness.run_all(__file__, [f"scale {n}"], extra, rows=n):
            results.append(doc)
    print()
    harness.report(
        results,
        [
            harness.Column("series", "series", ",.0f"),
            harness.Column("windows", "windows", ",.0f"),
            harness.Column("steps", "steps", ",.0f"),
            harness.Column("series/s", "rows_per_second", ",.0f"),
            harness.Column("wall s", "wall", ",.1f"),
            harness.Column("peak RSS MB", "peak_rss_mb", ",.0f"),
            harness.Column("RSS vs first", "peak_rss_mb", "+.1%", vs="change"),
            harness.Column("test wQL", "own_wql", ".4f"),
        ],
        baseline=f"scale {args.series[0]}",
    )
    harness.write_json(args.json, results)


if __name__ == "__main__":
    main()
