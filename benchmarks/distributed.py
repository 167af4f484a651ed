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

import harness
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


COLUMNS = [
    harness.Column("rows/s", "rows_per_second", ",.0f"),
    harness.Column("x 1 proc", "rows_per_second", ".2f", vs="ratio"),
    harness.Column("steady", "steady_rows_per_second", ",.0f"),
    harness.Column("x 1 proc", "steady_rows_per_second", ".2f", vs="ratio"),
    harness.Column("quality", "quality", ".5g"),
    harness.Column("vs 1 proc", "quality", "+.2%", vs="change"),
    harness.Column("push MB", "push_bytes", ",.0f", scale=1e-6),
    harness.Column("pull MB", "pull_bytes", ",.0f", scale=1e-6),
]


def main() -> None:
    # Every run shares one Ray in this process (no child processes: starting Ray costs
    # seconds, and the rows/s are the trainer's own, not wall time from a process start).
    parser = harness.parser(__doc__, rows=1_000_000, child=False)
    parser.add_argument("--fm-rows", type=int, default=300_000)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    cases = [case for case in CASES if not args.match or args.match in case]
    files = data(args.rows, args.fm_rows, {CASES[case][0] for case in cases})
    temp = tempfile.mkdtemp(prefix="sf-ray-bench-", dir="/tmp")
    ray.init(address="local", include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    print(f"{args.rows:,} rows ({args.fm_rows:,} for FM); {os.cpu_count()} cores", flush=True)
    results: list[dict[str, Any]] = []
    for case in cases:
        algorithm = CASES[case][0]
        for workers in [None, *(int(x) for x in args.workers.split(","))]:
            started = time.perf_counter()
            r = run(case, files[algorithm], workers)
            r["wall"] = time.perf_counter() - started
            doc = {"case": case, "workers": "process" if workers is None else str(workers), **r}
            results.append(doc)
            print("  " + json.dumps(doc), flush=True)
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    print()
    harness.report(
        results,
        COLUMNS,
        baseline=lambda r: r["workers"] == "process",
        group="case",
        label="case",
        label_header="case",
        labels=[("workers", "workers")],
    )
    harness.write_json(args.json, results)


if __name__ == "__main__":
    main()
