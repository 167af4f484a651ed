"""Every built-in algorithm on a device against the CPU: agreement, and rows/s (benchmarks/gpu.sh).

    python benchmarks/gpu.py agree --device cuda --out DIR [--rows 20000]
    python benchmarks/gpu.py bench --device cuda --out DIR [--rows 1000000]
    python benchmarks/gpu.py table DIR

``agree`` trains each algorithm on the same generated Parquet file on the CPU and on
``--device`` and requires the device's model to match: its validation metric within
``METRIC_TOLERANCE`` (relative) of the CPU's, and its predictions on the validation rows within
``OUTPUT_TOLERANCE`` of the CPU's, relative to their largest magnitude (magnitudes only: a PCA
component may come out with the other sign on another device). On ``--device cpu`` both runs
are on the CPU and must agree exactly.

``bench`` measures rows/s of each algorithm on the CPU and on ``--device``: from Parquet
(``train()``, its own ``train:rows_per_second``), and from tensors already in memory on that
device (``init_state``, ``prepare`` and ``update`` alone, to the end of the last kernel). A
short warm-up run on each device comes first (CUDA's context and kernels are not timed).

``table`` prints what the two wrote in ``DIR`` as one Markdown table, with the test stages'
summaries that ``gpu.sh`` left there.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import harness
from factorization_machines import FM_HP  # the FM benchmark's model

METRIC_TOLERANCE = 1e-3
OUTPUT_TOLERANCE = 1e-2
FM_WIDTH = 1 << 18


@dataclass(frozen=True)
class Workload:
    """How one algorithm is trained and judged here."""

    task: Callable[[], Any]  # a streamfit.datagen task
    hyperparameters: dict[str, Any]
    metric: str  # a validation metric of train()
    output: str | None  # the prediction compared between devices (None: every one)
    #: How far the device's metric may be from the CPU's (relative).
    metric_tolerance: float = METRIC_TOLERANCE
    #: How far its predictions may be, relative to their largest magnitude; None: not
    #: compared (a model of random steps: the device's generator draws other numbers, so it
    #: is another model of the same quality, as two seeds are).
    output_tolerance: float | None = OUTPUT_TOLERANCE


def _workloads() -> dict[str, Workload]:
    from streamfit.datagen import (
        cluster_task,
        fm_task,
        lda_task,
        linear_task,
        low_rank_task,
        series_task,
    )

    return {
        "linear-learner": Workload(
            lambda: linear_task(100, "binary", seed=11, signal=3.5),
            {"predictor_type": "binary_classifier", "num_models": 32, "mini_batch_size": 1000},
            "validation:roc_auc_score",
            "score",
        ),
        "factorization-machines": Workload(
            lambda: fm_task(n_features=FM_WIDTH, seed=11),
            {**FM_HP, "feature_dim": FM_WIDTH},
            "validation:roc_auc_score",
            "score",
        ),
        "kmeans": Workload(
            lambda: cluster_task(50, 25, seed=11),
            {"k": 25, "mini_batch_size": 5000},
            "validation:msd",
            "distance_to_cluster",
        ),
        "pca": Workload(
            lambda: low_rank_task(200, 10, seed=11),
            {"num_components": 10, "mini_batch_size": 5000},
            "validation:explained_variance_ratio",
            "projection",
        ),
        # the Debian benchmark's shape: 5,000 words, 20 topics, 50 words a document
        "ntm": Workload(
            lambda: lda_task(5000, 20, seed=11, doc_length=50),
            {"feature_dim": 5000, "num_topics": 20},
            "validation:total_loss",
            "topic_weights",
            metric_tolerance=0.05,  # as two seeds differ on the CPU
            output_tolerance=None,
        ),
        # a row is a quarterly series of 16 steps: 6 training windows (stride 2)
        "deepar": Workload(
            lambda: series_task(16, 4, seed=11),
            {
                "time_freq": "Q",
                "context_length": 8,
                "prediction_length": 4,
                "stride": 2,
                "cardinality": [5],  # series_task's groups
                "num_dynamic_feat": "ignore",
            },
            "validation:mean_wQuantileLoss",
            "mean",
            metric_tolerance=0.05,  # sample paths: the device's generator draws others
            output_tolerance=None,
        ),
    }


def workloads() -> dict[str, Workload]:
    """One per registered algorithm: the benchmark-sized ones above, else the files its
    ``check_parameters`` declare for the checks (a new algorithm is covered by being
    registered, and all its predictions are compared)."""
    from streamfit import algorithm_names, get_algorithm
    from streamfit.checks.data import build_task, parameters_of

    known = _workloads()
    out = {}
    for name in algorithm_names():
        if name in known:
            out[name] = known[name]
            continue
        p = parameters_of(get_algorithm(name))
        out[name] = Workload(
            lambda data=p.data: build_task(data),
            dict(p.hyperparameters),
            f"validation:{p.metric}",
            None,
        )
    return out


def _file(folder: Path, name: str, task: Any, rows: int, offset: int = 0) -> Path:
    """``rows`` rows of ``task`` as Parquet, written once."""
    from streamfit.datagen import write_batches

    path = folder / f"{name}-{rows}-{offset}.parquet"
    if not path.exists():
        write_batches(path, task.blocks(rows, block=50_000, offset=offset))
    return path


def _predictions(model: Any, path: Path, output: str | None) -> np.ndarray:
    """Magnitudes of the model's ``output`` (None: every numeric one) on each row of ``path``."""
    import pyarrow.parquet as pq

    from streamfit import predict_records

    labelled = "label" in pq.read_schema(path).names
    values = []
    for answer in predict_records(model, str(path), labelled=labelled):
        keys = [output] if output else sorted(answer)
        values.append(np.hstack([_numbers(answer[k]) for k in keys]))
    return np.abs(np.vstack(values))


def _numbers(value: Any) -> np.ndarray:
    """The numbers of an answer's field, flat (a mapping's values, as a forecast's quantiles)."""
    if isinstance(value, dict):
        return np.hstack([_numbers(v) for v in value.values()])
    return np.ravel(np.asarray(value, dtype=np.float64))


def agree(device: str, rows: int, out: Path) -> bool:
    """Train every algorithm on the CPU and on ``device``; True when all agree."""
    from streamfit import train

    results = []
    with tempfile.TemporaryDirectory(prefix="sf-gpu-") as tmp:
        for name, w in workloads().items():
            task = w.task()
            train_path = _file(Path(tmp), name, task, rows)
            validation = _file(Path(tmp), name, task, 5000, offset=10**9)
            metric, outputs = {}, {}
            for dev in ("cpu", device):
                r = train(
                    name,
                    str(train_path),
                    validation=str(validation),
                    hyperparameters=w.hyperparameters,
                    device=dev,
                    progress=False,
                )
                metric[dev] = r.metrics[w.metric]
                outputs[dev] = _predictions(r.model.to("cpu"), validation, w.output)
            metric_gap = abs(metric[device] - metric["cpu"]) / abs(metric["cpu"])
            scale = max(float(np.max(outputs["cpu"])), 1e-12)
            output_gap = float(np.max(np.abs(outputs[device] - outputs["cpu"]))) / scale
            exact = device == "cpu"  # the same device twice: the same model, bit for bit
            outputs_agree = w.output_tolerance is None or output_gap <= w.output_tolerance
            ok = (
                (metric_gap, output_gap) == (0, 0)
                if exact
                else (metric_gap <= w.metric_tolerance and outputs_agree)
            )
            doc = {
                "algorithm": name,
                "device": device,
                "metric": w.metric.split(":", 1)[1],
                "metric_cpu": metric["cpu"],
                "metric_device": metric[device],
                "metric_gap": metric_gap,
                "output_gap": output_gap,
                "agrees": ok,
            }
            print(json.dumps(doc), flush=True)
            results.append(doc)
    (out / "agree.json").write_text(json.dumps(results, indent=2) + "\n")
    return all(r["agrees"] for r in results)


def _synchronize(device: str) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _in_memory(name: str, w: Workload, path: Path, device: str) -> float:
    """Rows/s of init_state, prepare and update over batches already on ``device``."""
    import os

    import torch

    from streamfit import Batcher, SourceOptions, get_algorithm, open_source
    from streamfit.training.series_input import series_options

    if device == "cpu":  # the trainer's threads: all cores but one (see compute_threads)
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))

    algo = get_algorithm(name)(w.hyperparameters)
    width = algo.expected_features()
    # a forecaster's rows are the windows of the series
    options = series_options(algo, SourceOptions(labelled=algo.supervised), "train")
    source = open_source(str(path), options)
    batches = list(Batcher(source, algo.mini_batch_size, device=device, n_features=width))
    rows = sum(b.n_rows for b in batches)
    _synchronize(device)
    started = time.perf_counter()
    state = algo.init_state(batches[0].n_features, device)
    held, seen = [], 0
    for b in batches:  # the trainer's warm-up: prepare sees the first warmup_rows rows
        if seen >= max(algo.warmup_rows(), 1):
            break
        held.append(b)
        seen += b.n_rows
    algo.prepare(state, held)
    for b in batches:
        algo.update(state, b)
    _synchronize(device)
    return rows / (time.perf_counter() - started)


def bench(device: str, rows: int, out: Path) -> None:
    from streamfit import train

    devices = ["cpu"] if device == "cpu" else ["cpu", device]
    results = []
    with tempfile.TemporaryDirectory(prefix="sf-gpu-") as tmp:
        for name, w in workloads().items():
            task = w.task()
            train_path = _file(Path(tmp), name, task, rows)
            for dev in devices:
                hp = w.hyperparameters
                if dev != "cpu":  # CUDA's context, allocator and kernels, ready before timing
                    warm = _file(Path(tmp), name, task, 10_000)
                    train(name, str(warm), hyperparameters=hp, device=dev, progress=False)
                    _in_memory(name, w, warm, dev)
                r = train(name, str(train_path), hyperparameters=hp, device=dev, progress=False)
                doc = {
                    "algorithm": name,
                    "device": dev,
                    "rows": rows,
                    "parquet_rows_per_second": r.metrics["train:rows_per_second"],
                    "memory_rows_per_second": _in_memory(name, w, train_path, dev),
                }
                print(json.dumps(doc), flush=True)
                results.append(doc)
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")


def table(folder: Path) -> None:
    """The stages' summaries, then one table: per algorithm, agreement and rows/s."""
    for line in sorted(folder.glob("stage-*.txt")):
        print(line.read_text().strip())
    agreed = _read(folder / "agree.json")
    benched = _read(folder / "bench.json")
    device = next((r["device"] for r in agreed + benched if r["device"] != "cpu"), "cpu")
    rows = []
    for name in dict.fromkeys([r["algorithm"] for r in agreed + benched]):
        a = next((r for r in agreed if r["algorithm"] == name), {})
        speed = {r["device"]: r for r in benched if r["algorithm"] == name}
        cpu, dev = speed.get("cpu", {}), speed.get(device, {})
        rows.append(
            {
                "name": name,
                "metric": a.get("metric", "-"),
                "cpu_metric": a.get("metric_cpu"),
                "device_metric": a.get("metric_device"),
                "metric_gap": a.get("metric_gap"),
                "output_gap": a.get("output_gap"),
                "agrees": "-" if "agrees" not in a else "yes" if a["agrees"] else "NO",
                "parquet_cpu": cpu.get("parquet_rows_per_second"),
                "parquet_device": dev.get("parquet_rows_per_second"),
                "memory_cpu": cpu.get("memory_rows_per_second"),
                "memory_device": dev.get("memory_rows_per_second"),
            }
        )
    for r in rows:
        for source in ("parquet", "memory"):
            cpu, dev = r[f"{source}_cpu"], r[f"{source}_device"]
            r[f"{source}_x"] = dev / cpu if cpu and dev and not math.isnan(cpu) else None
    n = benched[0]["rows"] if benched else 0
    print(
        f"\nagreement: {device} vs cpu, validation metric within {METRIC_TOLERANCE:g} "
        f"(relative), predictions within {OUTPUT_TOLERANCE:g} of their largest magnitude "
        f"(exactly on cpu vs cpu); rows/s on {n:,} generated rows\n"
    )
    columns = [
        harness.Column("cpu", "cpu_metric", ".5g"),
        harness.Column(device, "device_metric", ".5g"),
        harness.Column("metric gap", "metric_gap", ".1e"),
        harness.Column("output gap", "output_gap", ".1e"),
        harness.Column("Parquet rows/s, cpu", "parquet_cpu", ",.0f"),
        harness.Column("memory rows/s, cpu", "memory_cpu", ",.0f"),
    ]
    if device != "cpu":
        columns[5:5] = [
            harness.Column(f"Parquet rows/s, {device}", "parquet_device", ",.0f"),
            harness.Column("x", "parquet_x", ".2f"),
        ]
        columns += [
            harness.Column(f"memory rows/s, {device}", "memory_device", ",.0f"),
            harness.Column("x", "memory_x", ".2f"),
        ]
    harness.report(
        rows,
        columns,
        label_header="algorithm",
        labels=[("metric", "metric"), ("agrees", "agrees")],
    )


def _read(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=["agree", "bench", "table"])
    parser.add_argument("folder", nargs="?", type=Path, help="table: the --out folder")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.stage == "table":
        table(args.folder or args.out)
        return
    out = args.out or Path(".")
    if args.stage == "agree":
        if not agree(args.device, args.rows or 20_000, out):
            raise SystemExit(f"{args.device} and cpu disagree beyond the tolerances")
    else:
        bench(args.device, args.rows or 1_000_000, out)


if __name__ == "__main__":
    main()
