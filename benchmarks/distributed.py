"""Distributed training on a local Ray: rows/s on 1 and 2 workers, and the quality of the
distributed model against one process's.

    python benchmarks/distributed.py [--rows 1000000] [--fm-rows 300000] [--workers 1,2]
                                     [--match NAME] [--json out.json]

Data (generated deterministically, cached under benchmarks/data/distributed/): Parquet files
in row groups of 50,000 rows, so shards are whole row groups. Linear Learner: a binary task
of 50 features (``linear_task``), 32 candidates, batches of 1,000, judged by validation AUC.
K-Means: 10 Gaussian clusters in 20 dimensions, k=10, judged by validation msd. PCA: rank-5
data in 50 dimensions, 5 components, judged by the explained variance ratio. Factorization
Machines: a wide sparse model, ``fm_task`` rows (30 one-hot fields hashed into 2^20 columns),
16 factors with Adam and iterate averaging (a packed table of 2^20 x 4 x 17 floats, 285 MB),
batches of 1,000, judged by validation AUC; ``--fm-rows`` of them (fewer: a row costs more).

With a parameter server the table also reports the bytes workers pushed to it and pulled
from it (``train:server_push_bytes``, ``train:server_pull_bytes``), in MB.

Every configuration runs against one local Ray started once (``num_cpus`` = the machine's
cores). A run's rows/s is the trainer's own ``train:rows_per_second``: the rows over the
seconds of the fit, which include starting the actors (a second or two each, in parallel);
"steady" leaves that start-up (``train:startup_seconds``) out. Compare ratios: the
machine's load from other work moves the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from factorization_machines import FM_HP  # the same model as the one-process FM benchmark
from streamfit import train
from streamfit.datagen import cluster_task, fm_task, linear_task, low_rank_task

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "distributed"
ROW_GROUP = 50_000

LL_HP = {
    "predictor_type": "binary_classifier",
    "num_models": 32,
    "mini_batch_size": 1000,
    "binary_classifier_model_selection_criteria": "loss_function",
}
CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    # name: (algorithm, hyperparameters, metric: higher is better unless it is msd)
    "linear-learner async": ("linear-learner", LL_HP, "validation:roc_auc_score"),
    "linear-learner sync": ("linear-learner", LL_HP, "validation:roc_auc_score"),
    "kmeans merge": ("kmeans", {"k": 10, "mini_batch_size": 1000}, "validation:msd"),
    "pca merge": (
        "pca",
        {"num_components": 5, "mini_batch_size": 1000},
        "validation:explained_variance_ratio",
    ),
    "fm async": ("factorization-machines", FM_HP, "validation:roc_auc_score"),
}


def _write(path: Path, blocks: Iterator[pa.RecordBatch]) -> None:
    if path.exists():
        return
    tmp = path.with_name(path.name + ".tmp")
    writer = None
    try:
        for block in blocks:
            table = pa.Table.from_batches([block])
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)


def data(rows: int, fm_rows: int, algorithms: set[str]) -> dict[str, tuple[Path, Path]]:
    """Train and validation files of ``algorithms``, written once."""
    DATA.mkdir(parents=True, exist_ok=True)
    tasks = {
        "linear-learner": (linear_task(50, "binary", seed=11), rows),
        "kmeans": (cluster_task(20, 10, seed=11), rows),
        "pca": (low_rank_task(50, 5, seed=11), rows),
        "factorization-machines": (fm_task(n_features=1 << 20, seed=11), fm_rows),
    }
    out = {}
    for name, (task, n) in tasks.items():
        if name not in algorithms:
            continue
        train_path = DATA / f"{name}-{n}.parquet"
        validation = DATA / f"{name}-validation.parquet"
        _write(train_path, task.blocks(n, block=ROW_GROUP))
        _write(validation, task.blocks(20_000, offset=10**9))
        out[name] = (train_path, validation)
    return out


def run(case: str, files: tuple[Path, Path], workers: int | None) -> dict[str, float]:
    algorithm, hp, metric = CASES[case]
    kwargs: dict[str, Any] = {}
    if workers is not None:
        kwargs = {"workers": workers, "sync": case.endswith(" sync")}
    result = train(
        algorithm,
        str(files[0]),
        validation=str(files[1]),
        hyperparameters=hp,
        progress=False,
        **kwargs,
    )
    m = result.metrics
    steady = m["train:seconds"] - m.get("train:startup_seconds", 0.0)
    return {
        "rows_per_second": m["train:rows_per_second"],
        "steady_rows_per_second": m["train:rows"] / steady,
        "seconds": m["train:seconds"],
        "startup_seconds": m.get("train:startup_seconds", 0.0),
        "quality": m[metric],
        "push_bytes": m.get("train:server_push_bytes", 0.0),
        "pull_bytes": m.get("train:server_pull_bytes", 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--fm-rows", type=int, default=300_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--match", default="", help="only cases whose name contains this")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    cases = [case for case in CASES if args.match in case]
    files = data(args.rows, args.fm_rows, {CASES[case][0] for case in cases})
    temp = tempfile.mkdtemp(prefix="sf-ray-bench-", dir="/tmp")
    ray.init(address="local", include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    results: list[dict[str, Any]] = []
    print(f"{args.rows:,} rows ({args.fm_rows:,} for FM); {os.cpu_count()} cores")
    head = ("case", "workers", "rows/s", "x 1 proc", "steady", "x 1 proc", "quality", "vs 1 proc")
    print(
        f"{head[0]:22} {head[1]:>7} {head[2]:>10} {head[3]:>8} {head[4]:>10} {head[5]:>8} "
        f"{head[6]:>9} {head[7]:>9} {'push MB':>9} {'pull MB':>9}"
    )
    for case in cases:
        algorithm = CASES[case][0]
        base = run(case, files[algorithm], None)
        rows: list[tuple[str, dict[str, float]]] = [("process", base)]
        for w in (int(x) for x in args.workers.split(",")):
            started = time.perf_counter()
            r = run(case, files[algorithm], w)
            r["wall"] = time.perf_counter() - started
            rows.append((str(w), r))
        for label, r in rows:
            speed = r["rows_per_second"] / base["rows_per_second"]
            steady = r["steady_rows_per_second"] / base["steady_rows_per_second"]
            gap = r["quality"] / base["quality"] - 1
            print(
                f"{case:22} {label:>7} {r['rows_per_second']:>10,.0f} {speed:>8.2f} "
                f"{r['steady_rows_per_second']:>10,.0f} {steady:>8.2f} "
                f"{r['quality']:>9.5g} {gap:>+9.2%} "
                f"{r['push_bytes'] / 1e6:>9,.0f} {r['pull_bytes'] / 1e6:>9,.0f}"
            )
            results.append({"case": case, "workers": label, **r})
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
